// The Switchyard web manager: one page that does everything through the REST API
// with its session cookie. The server decides what each user may see and change; this
// script only shows it. Pages are chosen by the URL's #fragment.
'use strict';

const session = { me: null, csrf: null, tenant: '' };
let leaving = []; // what the current page must stop (timers, event streams) when left

// ---- helpers -------------------------------------------------------------------

/** An element: h('td', {class: 'x', onclick: f}, 'text', child...). Text is never HTML. */
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'value') el.value = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const kid of kids.flat()) {
    if (kid === undefined || kid === null || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

/** Call the API: {status, data}. Changes carry the session's CSRF token. */
async function api(method, path, body, contentType) {
  const url = new URL(path, location.origin);
  if (session.tenant && session.me && session.me.role === 'admin' && !url.searchParams.has('tenant')) {
    url.searchParams.set('tenant', session.tenant);
  }
  const headers = {};
  if (method !== 'GET') headers['X-CSRF-Token'] = session.csrf || '';
  let payload;
  if (body instanceof Blob || body instanceof ArrayBuffer || typeof body === 'string') {
    payload = body;
    headers['Content-Type'] = contentType || 'application/octet-stream';
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers['Content-Type'] = 'application/json';
  }
  const resp = await fetch(url, { method, headers, body: payload, credentials: 'same-origin' });
  const text = await resp.text();
  let data = text;
  try { data = text ? JSON.parse(text) : null; } catch (_) { /* not JSON: keep text */ }
  if (resp.status === 401 && path !== '/api/v1/login' && path !== '/api/v1/session') {
    session.me = null;
    showLogin('Your session has ended; log in again.');
  }
  return { status: resp.status, data };
}

/** The API's reason for a refusal. */
function reason(r) {
  return (r.data && r.data.error && r.data.error.message) || `HTTP ${r.status}`;
}

function fmtMs(ms) { return ms ? new Date(ms).toISOString().replace('T', ' ').slice(0, 19) : ''; }
function fmtSecs(s) { s = Math.round(s || 0); return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`; }
function pct(x) { return `${(100 * (x || 0)).toFixed(1)}%`; }

function table(headers, rows, attrs) {
  return h('table', attrs || {}, h('thead', {}, h('tr', {}, headers.map((x) => h('th', {}, x)))),
    h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: headers.length, class: 'muted' }, 'none'))));
}

function message(el, r, ok) {
  el.replaceChildren();
  el.className = r.status < 300 ? 'ok' : 'error';
  el.textContent = r.status < 300 ? (ok || 'Done.') : reason(r);
}

function formValues(form) {
  const out = {};
  for (const [k, v] of new FormData(form).entries()) if (v !== '' && !(v instanceof File)) out[k] = v;
  return out;
}

function page(title, ...kids) {
  document.getElementById('main').replaceChildren(h('h1', {}, title), ...kids);
}

// ---- login ---------------------------------------------------------------------

function showLogin(note) {
  stopPage();
  document.getElementById('nav').replaceChildren();
  document.getElementById('whoami').replaceChildren();
  const error = h('div', { id: 'login-error', class: 'error' }, note || '');
  const form = h('form', { id: 'login', class: 'stack', onsubmit: login },
    h('label', {}, 'User', h('input', { name: 'name', autocomplete: 'username', required: true })),
    h('label', {}, 'Password', h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true })),
    h('button', { type: 'submit' }, 'Log in'), error);
  document.getElementById('main').replaceChildren(h('div', { class: 'login' }, h('h1', {}, 'Switchyard manager'), form));

  async function login(ev) {
    ev.preventDefault();
    const r = await api('POST', '/api/v1/login', formValues(form));
    if (r.status !== 200) { error.textContent = reason(r); return; }
    started(r.data);
    if (!location.hash || location.hash === '#/login') location.hash = '#/dashboard';
    else render();
  }
}

function started(me) {
  session.me = me;
  session.csrf = me.csrf;
  session.tenant = '';
  const out = h('button', { class: 'secondary', id: 'logout', onclick: async () => {
    await api('POST', '/api/v1/logout');
    session.me = null;
    showLogin('Logged out.');
  } }, 'Log out');
  const who = document.getElementById('whoami');
  who.replaceChildren(h('span', { id: 'me' }, `${me.name} (${me.role}, ${me.tenant})`));
  if (me.role === 'admin') {
    who.append(h('input', { id: 'tenant', placeholder: 'tenant', value: '', title: 'Act for this tenant',
      onchange: (e) => { session.tenant = e.target.value.trim(); render(); } }));
  }
  who.append(out);
  const pages = [['dashboard', 'Dashboard'], ['calls', 'Current calls'], ['cdrs', 'Call records'],
    ['carrier', 'Carrier'], ['modules', 'Modules'], ['top', 'Top customers'], ['alarms', 'Alarms'], ['audit', 'Audit log']];
  if (me.role === 'admin') pages.push(['users', 'Users']);
  if (me.role === 'agent') pages.splice(pages.findIndex((p) => p[0] === 'modules'), 1);
  document.getElementById('nav').replaceChildren(...pages.map(([id, label]) => h('a', { href: `#/${id}`, id: `nav-${id}` }, label)));
}

// ---- pages ---------------------------------------------------------------------

function stopPage() { for (const stop of leaving) stop(); leaving = []; }

function every(ms, f) { f(); const t = setInterval(f, ms); leaving.push(() => clearInterval(t)); }

/** A line chart of the last hour's points [[ms, value]] on a canvas. */
function drawChart(canvas, points, label) {
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, hgt = canvas.clientHeight;
  canvas.width = w * ratio; canvas.height = hgt * ratio;
  const g = canvas.getContext('2d');
  g.scale(ratio, ratio);
  g.clearRect(0, 0, w, hgt);
  const now = Date.now(), from = now - 3600e3;
  const max = Math.max(1, ...points.map((p) => p[1]));
  g.fillStyle = '#66707c'; g.font = '11px system-ui';
  g.fillText(`${label} (max ${Math.round(max * 10) / 10}) — last hour`, 6, 12);
  g.strokeStyle = '#1f6feb'; g.lineWidth = 1.5; g.beginPath();
  points.forEach(([t, v], i) => {
    const x = ((t - from) / 3600e3) * w, y = hgt - 4 - (v / max) * (hgt - 20);
    if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
  });
  g.stroke();
}

function dashboard() {
  const card = (id, label) => h('div', { class: 'card' }, h('div', { class: 'label' }, label), h('div', { class: 'value', id }, '–'));
  const charts = { calls: h('canvas', { class: 'chart', id: 'chart-calls' }), cps: h('canvas', { class: 'chart', id: 'chart-cps' }) };
  page('Dashboard',
    h('div', { class: 'cards' },
      card('calls-active', 'Concurrent calls'), card('cps', 'CPS'), card('asr', 'ASR (5 min)'),
      card('acd', 'ACD (5 min)'), card('pdd', 'PDD (5 min)'), card('attempts', 'Calls ended (5 min)'),
      card('routing-up', 'Routing gateways up'), card('routing-down', 'Routing gateways down'),
      card('mapping-active', 'Mapping gateways active'), card('phones-online', 'Phones online'),
      card('income', 'Income today'), card('cost', 'Cost today'), card('profit', 'Profit today'),
      card('decisions-rate', 'Module decisions/s'), card('failures-rate', 'Module failures/s')),
    h('div', { class: 'charts' }, charts.calls, charts.cps),
    h('p', { class: 'muted', id: 'updated' }, ''));
  const series = { calls: [], cps: [] };
  let last = null;
  const url = new URL('/api/v1/dashboard/stream', location.origin);
  if (session.tenant && session.me.role === 'admin') url.searchParams.set('tenant', session.tenant);
  const source = new EventSource(url);
  leaving.push(() => source.close());
  // The server's last hour first (a point every 10 s), then a snapshot every second.
  source.addEventListener('history', (ev) => {
    for (const p of JSON.parse(ev.data)) {
      series.calls.push([p.at_ms, p.calls_active]);
      series.cps.push([p.at_ms, p.cps]);
    }
  });
  source.addEventListener('snapshot', (ev) => {
    const s = JSON.parse(ev.data);
    const set = (id, v) => { const el = document.getElementById(id); if (el) el.textContent = v; };
    set('calls-active', s.calls_active);
    set('asr', pct(s.traffic.asr));
    set('acd', fmtSecs(s.traffic.acd_secs));
    set('pdd', `${Math.round(s.traffic.pdd_ms)} ms`);
    set('attempts', s.traffic.attempts);
    set('routing-up', s.gateways.routing_up);
    set('routing-down', s.gateways.routing_down);
    set('mapping-active', `${s.gateways.mapping_active} / ${s.gateways.mapping}`);
    set('phones-online', `${s.phones.online} / ${s.phones.total}`);
    set('income', s.today.income); set('cost', s.today.cost); set('profit', s.today.profit);
    let cps = 0;
    if (last) {
      const secs = Math.max(0.001, (s.at_ms - last.at_ms) / 1000);
      cps = (s.activity.calls - last.activity.calls) / secs;
      set('cps', cps.toFixed(1));
      set('decisions-rate', ((s.activity.decisions - last.activity.decisions) / secs).toFixed(1));
      set('failures-rate', ((s.activity.failures - last.activity.failures) / secs).toFixed(1));
    }
    last = s;
    for (const [k, v] of [['calls', s.calls_active], ['cps', cps]]) {
      series[k].push([s.at_ms, v]);
      while (series[k].length && series[k][0][0] < s.at_ms - 3600e3) series[k].shift();
    }
    drawChart(charts.calls, series.calls, 'Concurrent calls');
    drawChart(charts.cps, series.cps, 'Calls offered per second');
    set('updated', `Updated ${fmtMs(s.at_ms)} UTC, tenant ${s.tenant}`);
  });
}

// A number as received, and as sent on when a transform changed it.
function afterTransforms(received, sent) {
  return sent && sent !== received ? `${received} → ${sent}` : received;
}

// One leg's RTP as the relay counts it: packets in/out, loss and jitter.
function legRtp(leg) {
  if (!leg) return '–';
  return `in ${leg.received} / out ${leg.sent} · loss ${leg.lost} (${leg.loss_percent}%) · jitter ${leg.jitter_ms} ms`;
}

function currentCalls() {
  const body = h('div', {});
  const note = h('div', {});
  page('Current calls', note, body);
  every(2000, async () => {
    const r = await api('GET', '/api/v1/live-calls');
    if (r.status !== 200) { note.className = 'error'; note.textContent = reason(r); return; }
    const now = Date.now();
    const rows = r.data.calls.map((c) => h('tr', { 'data-call': c.call_id },
      h('td', {}, h('a', { href: `#/call/${encodeURIComponent(c.call_id)}` }, c.call_id)),
      h('td', {}, c.account), h('td', {}, c.ingress_gateway), h('td', {}, c.egress_gateway || ''),
      h('td', {}, afterTransforms(c.caller, c.caller_out)), h('td', {}, afterTransforms(c.callee, c.callee_out)),
      h('td', {}, `${c.codec_in || '?'} → ${c.codec_out || '?'}${c.transcoded ? ' (transcoded)' : ''}`),
      h('td', {}, `${c.caller_dtmf || '–'} / ${c.callee_dtmf || '–'}`),
      h('td', {}, c.relayed ? 'relayed' : 'direct'),
      h('td', { class: 'rtp-caller' }, legRtp(c.rtp && c.rtp.caller)),
      h('td', { class: 'rtp-callee' }, legRtp(c.rtp && c.rtp.callee)),
      h('td', {}, c.answer_ms ? fmtSecs((now - c.answer_ms) / 1000) : 'ringing'),
      h('td', {}, c.answer_ms ? h('button', { class: 'danger hangup', onclick: async () => {
        const res = await api('DELETE', `/api/v1/live-calls/${encodeURIComponent(c.call_id)}`);
        message(note, res, `Hanging up ${c.call_id}.`);
      } }, 'Hang up') : '')));
    body.replaceChildren(h('p', { class: 'muted', id: 'live-count' }, `${r.data.calls.length} calls in progress`),
      table(['Call-ID', 'Account', 'Mapping gw', 'Routing gw', 'Caller', 'Callee', 'Codecs', 'DTMF (caller/callee)', 'Media', 'Caller RTP', 'Vendor RTP', 'Duration', ''], rows, { id: 'live-calls' }));
  });
}

function cdrs() {
  const results = h('div', { id: 'cdr-results' });
  const error = h('div', { class: 'error' });
  const csv = h('a', { id: 'cdr-csv', href: '#', download: 'calls.csv' }, 'Download CSV');
  const form = h('form', { id: 'cdr-search', class: 'inline', onsubmit: (e) => { e.preventDefault(); search(null); } },
    h('label', {}, 'From', h('input', { name: 'from', type: 'datetime-local' })),
    h('label', {}, 'To', h('input', { name: 'to', type: 'datetime-local' })),
    h('label', {}, 'Account', h('input', { name: 'account' })),
    h('label', {}, 'Gateway', h('input', { name: 'gateway' })),
    h('label', {}, 'Caller', h('input', { name: 'caller' })),
    h('label', {}, 'Callee', h('input', { name: 'callee' })),
    h('label', {}, 'Result', h('select', { name: 'result' }, ['', 'answered', 'no_answer', 'busy', 'failed'].map((v) => h('option', { value: v }, v || 'any')))),
    h('label', {}, 'Per page', h('input', { name: 'limit', type: 'number', value: '50', min: '1', max: '1000' })),
    h('button', { type: 'submit' }, 'Search'), csv);
  page('Call records', form, error, results);

  function query(before) {
    const v = formValues(form);
    const q = new URLSearchParams();
    for (const k of ['account', 'gateway', 'caller', 'callee', 'result', 'limit']) if (v[k]) q.set(k, v[k]);
    if (v.from) q.set('from_ms', String(Date.parse(v.from + 'Z')));
    if (v.to) q.set('to_ms', String(Date.parse(v.to + 'Z')));
    if (before) q.set('before', before);
    if (session.tenant && session.me.role === 'admin') q.set('tenant', session.tenant);
    return q;
  }
  let searches = 0; // an older search's answer must not replace a newer one's
  async function search(before) {
    const mine = ++searches;
    const q = query(before);
    const c = new URLSearchParams(q); c.set('format', 'csv');
    csv.href = `/api/v1/calls?${c}`;
    const r = await api('GET', `/api/v1/calls?${q}`);
    if (mine !== searches) return;
    if (r.status !== 200) { error.textContent = reason(r); return; }
    error.textContent = '';
    const rows = r.data.calls.map((c) => {
      const b = c.billing || {};
      return h('tr', {},
        h('td', {}, h('a', { href: `#/call/${encodeURIComponent(c.call_id)}`, class: 'cdr-link' }, c.call_id)),
        h('td', {}, fmtMs(c.invite_ms)), h('td', {}, c.account), h('td', {}, c.ingress_gateway), h('td', {}, c.egress_gateway || ''),
        h('td', {}, c.caller_in), h('td', {}, c.callee_in), h('td', {}, c.callee_out || ''),
        h('td', {}, c.answer_ms ? fmtSecs((c.end_ms - c.answer_ms) / 1000) : ''),
        h('td', {}, c.final_code), h('td', {}, c.reason), h('td', {}, b.charge ?? ''), h('td', {}, b.profit ?? ''));
    });
    results.replaceChildren(
      h('p', { class: 'muted', id: 'cdr-count' }, `${r.data.calls.length} records`),
      table(['Call-ID', 'Start (UTC)', 'Account', 'Mapping gw', 'Routing gw', 'Caller', 'Callee', 'Callee out', 'Duration', 'Code', 'Reason', 'Charge', 'Profit'], rows, { id: 'cdr-table' }),
      r.data.next ? h('button', { id: 'cdr-next', class: 'secondary', onclick: () => search(r.data.next) }, 'Next page') : '');
  }
  search(null);
}

function callPage(callId) {
  const out = h('div', {});
  page(`Call ${callId}`, out);
  (async () => {
    const r = await api('GET', `/api/v1/calls/${encodeURIComponent(callId)}`);
    const parts = [];
    if (r.status === 200) {
      const c = r.data;
      parts.push(table(['Field', 'Value'], [['Account', c.account], ['Mapping gateway', c.ingress_gateway], ['Routing gateway', c.egress_gateway],
        ['Caller in / out', `${c.caller_in} / ${c.caller_out || ''}`], ['Callee in / out', `${c.callee_in} / ${c.callee_out || ''}`],
        ['Start', fmtMs(c.invite_ms)], ['Answer', fmtMs(c.answer_ms)], ['End', fmtMs(c.end_ms)], ['Final', `${c.final_code} ${c.reason}`],
        ['Codecs', `${c.codec_in || ''} → ${c.codec_out || ''}`], ['Charge', c.billing ? `${c.billing.charge} (cost ${c.billing.cost ?? ''})` : '']]
        .map(([k, v]) => h('tr', {}, h('td', {}, k), h('td', {}, v ?? ''))), { id: 'call-fields' }));
      parts.push(h('h2', {}, 'Attempts'), table(['#', 'Gateway', 'Caller', 'Callee', 'Code', 'Reason', 'PDD ms', 'Leg Call-ID'],
        (c.attempts || []).map((a, i) => h('tr', {}, h('td', {}, i + 1), h('td', {}, a.gateway), h('td', {}, a.caller), h('td', {}, a.callee),
          h('td', {}, a.code ?? ''), h('td', {}, a.reason || ''), h('td', {}, a.pdd_ms ?? ''), h('td', {}, a.leg_call_id))), { id: 'attempts' }));
    } else {
      parts.push(h('p', { class: 'muted' }, r.status === 404 ? 'No record (yet): the call may be in progress.' : reason(r)));
    }
    const t = await api('GET', `/api/v1/calls/${encodeURIComponent(callId)}/sip`);
    parts.push(h('h2', {}, 'SIP ladder'));
    if (t.status === 200) parts.push(ladder(t.data)); else parts.push(h('p', { class: 'error' }, reason(t)));
    out.replaceChildren(...parts);
  })();
}

/** A ladder diagram: a lane per address, the switch in the middle, a row per message. */
function ladder(messages) {
  if (!messages.length) return h('p', { class: 'muted', id: 'ladder-empty' }, 'No messages kept for this call.');
  const ns = 'http://www.w3.org/2000/svg';
  const s = (tag, attrs, text) => {
    const el = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    if (text !== undefined) el.textContent = text;
    return el;
  };
  const lanes = [];
  const laneOf = (addr) => { let i = lanes.indexOf(addr); if (i < 0) { lanes.push(addr); i = lanes.length - 1; } return i; };
  // Customers (the first peer) to the left of the switch, vendors to the right.
  const first = messages[0].remote;
  const order = (addr) => (addr === first ? 0 : 2 + laneOf(addr));
  messages.forEach((m) => { if (m.remote !== first) laneOf(m.remote); });
  const width = 260 * (lanes.length + 2), rowH = 26, top = 40;
  const x = (i) => 130 + i * 260;
  const svg = s('svg', { class: 'ladder', id: 'ladder', width, height: top + rowH * messages.length + 20 });
  const names = [[0, first], [1, 'switchyard'], ...lanes.map((a, i) => [2 + i, a])];
  for (const [i, name] of names) {
    svg.append(s('text', { x: x(i), y: 16, 'text-anchor': 'middle' }, name));
    svg.append(s('line', { class: 'lane', x1: x(i), y1: 24, x2: x(i), y2: top + rowH * messages.length }));
  }
  const detail = h('pre', { id: 'ladder-message' }, 'Click a message to see it.');
  messages.forEach((m, n) => {
    const y = top + n * rowH + 10;
    const peer = x(order(m.remote)), sw = x(1);
    const [from, to] = m.direction === 'in' ? [peer, sw] : [sw, peer];
    const cls = m.dropped ? 'arrow dropped' : 'arrow';
    svg.append(s('line', { class: cls, x1: from, y1: y, x2: to, y2: y }));
    const dir = to > from ? 1 : -1;
    svg.append(s('polyline', { class: cls, fill: 'none', points: `${to - 6 * dir},${y - 4} ${to},${y} ${to - 6 * dir},${y + 4}` }));
    const firstLine = m.message.split('\r\n')[0].replace(/ SIP\/2\.0$/, '').replace(/^SIP\/2\.0 /, '');
    const label = s('text', { class: 'msg', x: (from + to) / 2, y: y - 4, 'text-anchor': 'middle' },
      `${firstLine.slice(0, 40)}${m.dropped ? ' (dropped)' : ''}`);
    label.addEventListener('click', () => { detail.textContent = `${fmtMs(m.at_us / 1000)} ${m.direction} ${m.remote}\n\n${m.message}`; });
    svg.append(label);
  });
  return h('div', {}, h('div', { class: 'ladder-wrap' }, svg), detail);
}

const KINDS = [['accounts', 'Accounts'], ['mapping-gateways', 'Mapping gateways'], ['routing-gateways', 'Routing gateways'],
  ['phones', 'Phones'], ['gateway-groups', 'Gateway groups'], ['calendars', 'Calendars'], ['number-lists', 'Number lists'],
  ['address-lists', 'Address lists'], ['tables', 'Rate & route tables']];

function carrier(kind) {
  kind = kind || 'accounts';
  const tabs = h('div', { class: 'tabs' }, KINDS.map(([k, label]) => h('a', { href: `#/carrier/${k}`, id: `tab-${k}`, class: k === kind ? 'active' : '' }, label)));
  const list = h('div', {});
  const note = h('div', {});
  page('Carrier objects', tabs, note, list);
  if (kind === 'tables') return tables(list, note);
  const editor = h('form', { class: 'stack', id: 'object-form', onsubmit: save },
    h('label', {}, 'Id', h('input', { name: 'id', required: true })),
    h('label', {}, 'Object (JSON)', h('textarea', { name: 'body', rows: '10' }, '{}')),
    h('div', { class: 'row' }, h('button', { type: 'submit' }, 'Save'),
      h('button', { type: 'button', class: 'danger', onclick: remove }, 'Delete')));
  async function load() {
    const r = await api('GET', `/api/v1/${kind}`);
    if (r.status !== 200) { list.replaceChildren(h('p', { class: 'error' }, reason(r))); return; }
    const objects = r.data[kind] || [];
    // Live figures (state, current calls, ASR) from the statistics window.
    const stats = ['accounts', 'routing-gateways'].includes(kind) ? await api('GET', '/api/v1/stats') : null;
    const live = (id) => (stats && stats.status === 200 ? (kind === 'accounts' ? stats.data.accounts : stats.data.gateways)[id] : null);
    const rows = objects.map(({ id, object: obj }) => {
      const l = live(id);
      const figures = l ? `${l.current_calls} calls now, ASR ${pct(l.asr)}, ACD ${fmtSecs(l.acd_secs)}` : '';
      const summary = kind === 'accounts' ? `balance ${obj.balance}, credit ${obj.credit_limit}, max calls ${obj.max_calls || '∞'}; ${figures}` :
        kind === 'routing-gateways' ? `${l && l.down ? 'DOWN' : 'up'}, ${obj.address || 'registered'}, capacity ${obj.capacity || '∞'}; ${figures}` : '';
      return h('tr', { 'data-id': id }, h('td', {}, h('a', { href: '#', class: 'edit', onclick: (e) => { e.preventDefault(); edit(id, obj); } }, id)),
        h('td', {}, summary), h('td', {}, h('code', {}, JSON.stringify(obj).slice(0, 160))));
    });
    list.replaceChildren(table(['Id', 'Summary', 'Object'], rows, { id: 'objects' }), h('h2', {}, 'Add or change'), editor,
      kind === 'accounts' ? payments() : '');
  }
  function edit(id, obj) {
    const o = { ...obj }; delete o.tenant;
    editor.elements.id.value = id;
    editor.elements.body.value = JSON.stringify(o, null, 2);
  }
  async function save(ev) {
    ev.preventDefault();
    let body;
    try { body = JSON.parse(editor.elements.body.value); } catch (e) { note.className = 'error'; note.textContent = `Not JSON: ${e.message}`; return; }
    const r = await api('PUT', `/api/v1/${kind}/${encodeURIComponent(editor.elements.id.value)}`, body);
    message(note, r, 'Saved.');
    if (r.status < 300) load();
  }
  async function remove() {
    const r = await api('DELETE', `/api/v1/${kind}/${encodeURIComponent(editor.elements.id.value)}`);
    message(note, r, 'Deleted.');
    if (r.status < 300) load();
  }
  function payments() {
    const out = h('div', {});
    const form = h('form', { class: 'inline', id: 'payment-form', onsubmit: async (e) => {
      e.preventDefault();
      const v = formValues(form);
      const r = await api('POST', `/api/v1/accounts/${encodeURIComponent(v.account || '')}/payments`, { amount: Number(v.amount), note: v.note || '' });
      message(out, r, 'Payment recorded.');
      if (r.status < 300) load();
    } }, h('label', {}, 'Account', h('input', { name: 'account', required: true })),
    h('label', {}, 'Amount', h('input', { name: 'amount', required: true })),
    h('label', {}, 'Note', h('input', { name: 'note' })), h('button', { type: 'submit' }, 'Add payment'));
    return h('div', {}, h('h2', {}, 'Payment'), form, out);
  }
  load();
}

function tables(list, note) {
  const form = h('form', { class: 'inline', id: 'table-upload', onsubmit: async (e) => {
    e.preventDefault();
    const file = form.elements.file.files[0];
    if (!file) return;
    const r = await api('PUT', `/api/v1/tables/${encodeURIComponent(form.elements.name.value)}`, await file.text(), 'text/csv');
    message(note, r, 'Table uploaded.');
    if (r.status < 300) load();
  } }, h('label', {}, 'Name', h('input', { name: 'name', required: true })),
  h('label', {}, 'CSV', h('input', { name: 'file', type: 'file', accept: '.csv,text/csv', required: true })),
  h('button', { type: 'submit' }, 'Upload'));
  async function load() {
    const r = await api('GET', '/api/v1/tables');
    if (r.status !== 200) { list.replaceChildren(h('p', { class: 'error' }, reason(r))); return; }
    const items = Array.isArray(r.data) ? r.data : (r.data.tables || []);
    const rows = items.map((t) => h('tr', {}, h('td', {}, t.name), h('td', {}, t.rows ?? ''), h('td', {}, t.bytes ?? ''),
      h('td', {}, h('a', { href: `/api/v1/tables/${encodeURIComponent(t.name)}${session.tenant ? `?tenant=${encodeURIComponent(session.tenant)}` : ''}`, download: `${t.name}.json` }, 'download'))));
    list.replaceChildren(table(['Table', 'Rows', 'Bytes', ''], rows, { id: 'tables' }), h('h2', {}, 'Upload a CSV'), form);
  }
  load();
}

function modules() {
  const note = h('div', { id: 'module-note' });
  const mods = h('div', {});
  const binds = h('div', {});
  const simOut = h('pre', { id: 'sim-out' }, '');
  const upload = h('form', { class: 'inline', id: 'upload-form', onsubmit: async (e) => {
    e.preventDefault();
    const file = upload.elements.file.files[0];
    const q = new URLSearchParams({ description: upload.elements.description.value });
    const r = await api('POST', `/api/v1/modules/${encodeURIComponent(upload.elements.name.value)}?${q}`, file, 'application/wasm');
    message(note, r, r.status < 300 ? `Uploaded version ${r.data.version}.` : '');
    if (r.status < 300) load();
  } }, h('label', {}, 'Name', h('input', { name: 'name', required: true })),
  h('label', {}, 'Component (.wasm)', h('input', { name: 'file', type: 'file', accept: '.wasm', required: true })),
  h('label', {}, 'Description', h('input', { name: 'description' })), h('button', { type: 'submit' }, 'Upload'));
  const percent = h('input', { name: 'percent', type: 'range', min: '0', max: '100', step: '1', value: '0', id: 'canary-percent' });
  const percentLabel = h('span', { id: 'canary-percent-label' }, '0%');
  percent.addEventListener('input', () => { percentLabel.textContent = `${percent.value}%`; });
  const bind = h('form', { class: 'inline', id: 'bind-form', onsubmit: async (e) => {
    e.preventDefault();
    const v = formValues(bind);
    const body = { module: v.module, version: v.version };
    if (v.canary_version) body.canary = { version: v.canary_version, percent: Number(percent.value) };
    const r = await api('PUT', `/api/v1/bindings/${encodeURIComponent(v.scope)}?hook=${v.hook}`, body);
    message(note, r, 'Bound.');
    if (r.status < 300) load();
  } }, h('label', {}, 'Scope', h('input', { name: 'scope', value: 'global', required: true })),
  h('label', {}, 'Hook', h('select', { name: 'hook' }, h('option', { value: 'call' }, 'call'), h('option', { value: 'screen' }, 'screen'))),
  h('label', {}, 'Module', h('input', { name: 'module', required: true })),
  h('label', {}, 'Version', h('input', { name: 'version', required: true })),
  h('label', {}, 'Canary version', h('input', { name: 'canary_version' })),
  h('label', {}, h('span', {}, 'Canary share ', percentLabel), percent), h('button', { type: 'submit' }, 'Bind'));
  const sim = h('form', { class: 'stack', id: 'simulate-form', onsubmit: async (e) => {
    e.preventDefault();
    const v = formValues(sim);
    let call;
    try { call = JSON.parse(v.call || '{}'); } catch (err) { simOut.textContent = `Not JSON: ${err.message}`; return; }
    const r = await api('POST', `/api/v1/modules/${encodeURIComponent(v.module)}/versions/${encodeURIComponent(v.version)}/simulate`, { hook: v.hook, call });
    simOut.textContent = r.status === 200 ? JSON.stringify(r.data, null, 2) : reason(r);
  } }, h('div', { class: 'row' }, h('label', {}, 'Module', h('input', { name: 'module', required: true })),
    h('label', {}, 'Version', h('input', { name: 'version', required: true })),
    h('label', {}, 'Hook', h('select', { name: 'hook' }, ['route', 'screen', 'on_attempt_failed'].map((x) => h('option', { value: x }, x))))),
  h('label', {}, 'Call (JSON)', h('textarea', { name: 'call', rows: '6' }, '{"caller": {"user": "15551230000", "display": null, "source": "From"}, "callee": "442071234567"}')),
  h('button', { type: 'submit' }, 'Simulate'));
  page('Modules', note, h('h2', {}, 'Upload'), upload, mods, h('h2', {}, 'Bindings'), binds, bind, h('h2', {}, 'Simulate'), sim, simOut);

  async function load() {
    const [m, b] = await Promise.all([api('GET', '/api/v1/modules'), api('GET', '/api/v1/bindings')]);
    if (m.status === 200) {
      const rows = [];
      for (const mod of m.data.modules) {
        for (const v of mod.versions) {
          const health = h('td', { class: 'health' }, '');
          rows.push(h('tr', { 'data-version': v.version }, h('td', {}, mod.name), h('td', {}, h('code', {}, v.version)),
            h('td', {}, v.description || ''), h('td', {}, fmtMs(v.uploaded_at_ms)), h('td', {}, v.uploaded_by), health));
          api('GET', `/api/v1/modules/${encodeURIComponent(mod.name)}/versions/${encodeURIComponent(v.version)}/health`).then((r) => {
            if (r.status !== 200) return;
            const x = r.data.health;
            const failures = Object.entries(x.failures || {}).filter(([, n]) => n).map(([k, n]) => `${k} ${n}`).join(', ');
            health.textContent = `${x.invocations} calls, p50 ${x.p50_us} µs, p99 ${x.p99_us} µs${failures ? `, failures: ${failures}` : ''}`;
          });
        }
      }
      mods.replaceChildren(h('h2', {}, 'Versions'), table(['Module', 'Version', 'Description', 'Uploaded (UTC)', 'By', 'Health'], rows, { id: 'module-versions' }));
    } else mods.replaceChildren(h('p', { class: 'error' }, reason(m)));
    if (b.status === 200) {
      const rows = b.data.map((x) => h('tr', { 'data-scope': x.scope },
        h('td', {}, x.scope), h('td', {}, x.hook), h('td', {}, x.module), h('td', {}, h('code', {}, x.version)),
        h('td', {}, x.canary ? `${x.canary.version} at ${x.canary.percent}%` : ''), h('td', {}, x.updated_by),
        h('td', {}, h('button', { class: 'secondary rollback', onclick: async () => {
          const r = await api('POST', `/api/v1/bindings/${encodeURIComponent(x.scope)}/rollback?hook=${x.hook}`);
          message(note, r, 'Rolled back.');
          load();
        } }, 'Roll back'))));
      binds.replaceChildren(table(['Scope', 'Hook', 'Module', 'Version', 'Canary', 'By', ''], rows, { id: 'bindings' }));
    } else binds.replaceChildren(h('p', { class: 'error' }, reason(b)));
  }
  load();
}

function topCustomers() {
  const out = h('div', { class: 'row' });
  page('Top customers', out);
  (async () => {
    const boxes = [];
    for (const [period, plabel] of [['today', 'today'], ['month', 'this month']]) {
      for (const [by, blabel] of [['minutes', 'minutes'], ['revenue', 'revenue']]) {
        const r = await api('GET', `/api/v1/top-customers?period=${period}&by=${by}`);
        const rows = r.status === 200 ? r.data.customers.map((c) => h('tr', {}, h('td', {}, c.account), h('td', {}, c.minutes.toFixed(1)),
          h('td', {}, c.totals.income), h('td', {}, c.totals.calls))) : [];
        boxes.push(h('div', {}, h('h2', {}, `By ${blabel}, ${plabel}`),
          r.status === 200 ? table(['Account', 'Minutes', 'Income', 'Calls'], rows, { id: `top-${period}-${by}` }) : h('p', { class: 'error' }, reason(r))));
      }
    }
    out.replaceChildren(...boxes);
  })();
}

function alarms() {
  const out = h('div', {});
  page('Alarms', out);
  const row = (a) => h('tr', { class: `alarm ${a.severity}`, 'data-kind': a.kind, 'data-subject': a.subject },
    h('td', {}, a.severity), h('td', {}, a.kind.replaceAll('_', ' ')), h('td', {}, `${a.scope} ${a.subject}`),
    h('td', {}, a.detail), h('td', {}, `${a.value} (threshold ${a.threshold})`),
    h('td', {}, fmtMs(a.raised_ms)), h('td', {}, a.cleared_ms ? fmtMs(a.cleared_ms) : 'active'));
  const heads = ['Severity', 'Alarm', 'Concerns', 'Detail', 'Value', 'Raised (UTC)', 'Cleared (UTC)'];
  every(5000, async () => {
    const r = await api('GET', '/api/v1/alarms?cleared=50');
    if (r.status !== 200) { out.replaceChildren(h('p', { class: 'error' }, reason(r))); return; }
    out.replaceChildren(h('h3', {}, `Active (${r.data.active.length})`), table(heads, r.data.active.map(row), { id: 'alarms-active' }),
      h('h3', {}, 'Recently cleared'), table(heads, r.data.cleared.map(row), { id: 'alarms-cleared' }));
  });
}

function audit() {
  const out = h('div', {});
  page('Audit log', out);
  (async () => {
    const r = await api('GET', '/api/v1/audit?limit=200');
    if (r.status !== 200) { out.replaceChildren(h('p', { class: 'error' }, reason(r))); return; }
    out.replaceChildren(table(['When (UTC)', 'Who', 'Tenant', 'From', 'Action', 'Status'],
      r.data.entries.map((e) => h('tr', {}, h('td', {}, fmtMs(e.at_ms)), h('td', {}, e.who), h('td', {}, e.tenant), h('td', {}, e.source || ''),
        h('td', {}, e.action), h('td', {}, e.status))), { id: 'audit' }));
  })();
}

function users() {
  const note = h('div', {});
  const list = h('div', {});
  const form = h('form', { class: 'inline', id: 'user-form', onsubmit: async (e) => {
    e.preventDefault();
    const v = formValues(form);
    const r = await api('POST', '/api/v1/users', v);
    message(note, r, 'User saved.');
    if (r.status < 300) load();
  } }, h('label', {}, 'Name', h('input', { name: 'name', required: true })),
  h('label', {}, 'Password', h('input', { name: 'password', type: 'password', required: true })),
  h('label', {}, 'Role', h('select', { name: 'role' }, ['tenant', 'agent', 'admin'].map((x) => h('option', { value: x }, x)))),
  h('label', {}, 'Tenant', h('input', { name: 'tenant' })), h('label', {}, 'Account (agents)', h('input', { name: 'account' })),
  h('button', { type: 'submit' }, 'Save user'));
  page('Users', note, list, h('h2', {}, 'Add a user or change one'), form);
  async function load() {
    const r = await api('GET', '/api/v1/users');
    if (r.status !== 200) { list.replaceChildren(h('p', { class: 'error' }, reason(r))); return; }
    list.replaceChildren(table(['Name', 'Role', 'Tenant', 'Account', ''], r.data.users.map((u) => h('tr', {}, h('td', {}, u.name), h('td', {}, u.role),
      h('td', {}, u.tenant), h('td', {}, u.account || ''), h('td', {}, h('button', { class: 'danger', onclick: async () => {
        const res = await api('DELETE', `/api/v1/users/${encodeURIComponent(u.name)}`);
        message(note, res, 'Deleted.');
        load();
      } }, 'Delete')))), { id: 'users' }));
  }
  load();
}

// ---- routing -------------------------------------------------------------------

function render() {
  if (!session.me) return;
  stopPage();
  const [, name, arg] = (location.hash || '#/dashboard').split('/').map(decodeURIComponent);
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.id === `nav-${name === 'call' ? 'cdrs' : name}`);
  const pages = { dashboard, calls: currentCalls, cdrs, call: () => callPage(arg), carrier: () => carrier(arg), modules, top: topCustomers, alarms, audit, users };
  (pages[name] || dashboard)();
}

window.addEventListener('hashchange', render);
window.addEventListener('DOMContentLoaded', async () => {
  const r = await api('GET', '/api/v1/session');
  if (r.status === 200) { started(r.data); render(); } else showLogin(r.status === 403 ? reason(r) : '');
});
