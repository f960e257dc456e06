//! The call-record journal: records appended to segment files and never rewritten.
//!
//! Why not sled: sled keeps in-memory state for every key it holds. With its cache
//! capped at 64 MiB it still grew about 180 bytes of RSS per record written, without
//! levelling off (600,000 records of the shape below), so a switch that kept its call
//! records there ran out of memory in hours at 1,000 calls per second. Here what stays
//! in memory is bounded by configuration: the active segment's index (at most
//! `segment_bytes` of records), a few sealed segments' indexes cached for queries, and
//! a small summary per segment on disk.
//!
//! Layout, in `<data>/calls/`: `<first sequence number, 16 hex digits>.seg`, and for
//! every sealed segment an `.idx` beside it.
//! - A segment is [`MAGIC`], then one frame per record: payload length (u32 LE), CRC-32
//!   of the payload (u32 LE), the payload (the record in MessagePack, fields in order).
//!   A record's sequence number is its segment's first plus its place in it.
//! - An index is a [`SegmentIndex`] in MessagePack followed by its CRC-32 (u32 LE). It
//!   is written when its segment is sealed and rebuilt from the segment when missing.
//!
//! One writer appends (the store's call writer thread); readers run concurrently and
//! see a batch only once it is on disk ([`CallLog::append`] syncs before publishing).
//! On opening, the last segment is read frame by frame and cut at the first frame that
//! is torn or fails its CRC: what a crash left half-written was never acknowledged.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};

use super::{Error, Result};
use switchyard_model::CallRecord;

/// First bytes of every segment file (format version 1).
const MAGIC: &[u8; 8] = b"SYCDR1\n\0";
/// Frame header: payload length and CRC.
const FRAME_HEADER: usize = 8;
/// Bytes read at once when a query walks a segment backwards.
const READ_WINDOW: usize = 256 * 1024;
/// Sealed segments' indexes kept in memory for queries.
const CACHED_INDEXES: usize = 4;
/// A frame longer than this is corruption, not a record.
const MAX_FRAME: u32 = 16 * 1024 * 1024;

/// Default size at which a segment is sealed and a new one begun.
pub(super) const DEFAULT_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// What a segment's index knows: where each record is, its Call-ID's hash, and which
/// records each owner (account or gateway) has.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(super) struct SegmentIndex {
    /// Earliest and latest end time of its records, Unix ms.
    min_end_ms: u64,
    max_end_ms: u64,
    /// Byte offset of every record's frame, in order: a record's ordinal indexes this.
    offsets: Vec<u32>,
    /// (hash of the Call-ID, ordinal); sorted by hash once sealed.
    call_ids: Vec<(u64, u32)>,
    /// Owner → ordinals of its records, ascending.
    owners: BTreeMap<String, Vec<u32>>,
}

impl SegmentIndex {
    fn add(&mut self, offset: u32, record: &CallRecord) {
        let ordinal = self.offsets.len() as u32;
        if self.offsets.is_empty() {
            self.min_end_ms = record.end_ms;
            self.max_end_ms = record.end_ms;
        }
        self.min_end_ms = self.min_end_ms.min(record.end_ms);
        self.max_end_ms = self.max_end_ms.max(record.end_ms);
        self.offsets.push(offset);
        self.call_ids.push((call_id_hash(&record.call_id), ordinal));
        for owner in record.owners() {
            self.owners
                .entry(owner.to_string())
                .or_default()
                .push(ordinal);
        }
    }

    fn len(&self) -> u32 {
        self.offsets.len() as u32
    }

    /// Where record `ordinal`'s frame lies in a segment of `len` bytes.
    fn frame(&self, ordinal: u32, len: u64) -> (u64, u64) {
        let start = u64::from(self.offsets[ordinal as usize]);
        let end = self
            .offsets
            .get(ordinal as usize + 1)
            .map_or(len, |o| u64::from(*o));
        (start, end)
    }

    /// Ordinals of records with this Call-ID's hash, newest first.
    fn with_call_id(&self, hash: u64, sorted: bool) -> Vec<u32> {
        let mut found: Vec<u32> = if sorted {
            let start = self.call_ids.partition_point(|(h, _)| *h < hash);
            self.call_ids[start..]
                .iter()
                .take_while(|(h, _)| *h == hash)
                .map(|(_, o)| *o)
                .collect()
        } else {
            self.call_ids
                .iter()
                .filter(|(h, _)| *h == hash)
                .map(|(_, o)| *o)
                .collect()
        };
        found.sort_unstable_by(|a, b| b.cmp(a));
        found
    }
}

/// A stable hash of a Call-ID (FNV-1a: the index files outlive any process's hasher).
fn call_id_hash(call_id: &str) -> u64 {
    call_id.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What is kept in memory of a sealed segment.
#[derive(Debug, Clone)]
struct Sealed {
    first_seq: u64,
    count: u32,
    min_end_ms: u64,
    max_end_ms: u64,
    bytes: u64,
}

/// The segment being written.
struct Active {
    first_seq: u64,
    file: Arc<File>,
    /// Bytes on disk and published.
    len: u64,
    /// Shared with queries walking it; an append copies it only while one does.
    index: Arc<SegmentIndex>,
}

struct State {
    /// Oldest first.
    sealed: Vec<Sealed>,
    active: Active,
}

/// The journal. Cheap to share behind an `Arc`.
pub(super) struct CallLog {
    dir: PathBuf,
    segment_bytes: u64,
    state: RwLock<State>,
    /// Sealed segments' indexes most recently used by queries, newest use last.
    indexes: Mutex<VecDeque<(u64, Arc<SegmentIndex>)>>,
}

/// How much is on disk, for the census and the benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CallLogStats {
    /// Records kept.
    pub records: u64,
    /// Segment files (the active one included).
    pub segments: u64,
    /// Bytes of segments and their indexes.
    pub disk_bytes: u64,
    /// Records in the active segment, whose index is in memory.
    pub active_records: u64,
}

fn io_error(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source,
    }
}

fn corrupt(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::Corrupt(format!("{}: {what}", path.display()))
}

/// A record as stored.
pub(super) fn encode(record: &CallRecord) -> Result<Vec<u8>> {
    rmp_serde::to_vec(record).map_err(|e| Error::Corrupt(format!("encoding a call record: {e}")))
}

/// A stored record.
pub(super) fn decode(payload: &[u8]) -> Result<CallRecord> {
    rmp_serde::from_slice(payload)
        .map_err(|e| Error::Corrupt(format!("decoding a call record: {e}")))
}

impl CallLog {
    /// Open (or create) the journal in `dir`, recovering from a crash.
    pub(super) fn open(dir: &Path, segment_bytes: u64) -> Result<CallLog> {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        let mut firsts: Vec<u64> = std::fs::read_dir(dir)
            .map_err(|e| io_error(dir, e))?
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                u64::from_str_radix(name.strip_suffix(".seg")?, 16).ok()
            })
            .collect();
        firsts.sort_unstable();
        let log_dir = dir.to_path_buf();
        let mut sealed = Vec::new();
        let last = firsts.pop();
        for first in firsts {
            let index = match read_index(&index_path(dir, first)) {
                Ok(index) => index,
                Err(_) => {
                    // Sealed, but a crash came before its index was written.
                    let (index, _) = scan_segment(&segment_path(dir, first), false)?;
                    write_index(&index_path(dir, first), &index)?;
                    index
                }
            };
            let bytes = file_len(&segment_path(dir, first))? + file_len(&index_path(dir, first))?;
            sealed.push(Sealed {
                first_seq: first,
                count: index.len(),
                min_end_ms: index.min_end_ms,
                max_end_ms: index.max_end_ms,
                bytes,
            });
        }
        let active = match last {
            Some(first) => {
                let path = segment_path(dir, first);
                let (index, len) = scan_segment(&path, true)?;
                let file = OpenOptions::new()
                    .read(true)
                    .append(true)
                    .open(&path)
                    .map_err(|e| io_error(&path, e))?;
                Active {
                    first_seq: first,
                    file: Arc::new(file),
                    len,
                    index: Arc::new(index),
                }
            }
            None => new_segment(dir, 0)?,
        };
        Ok(CallLog {
            dir: log_dir,
            segment_bytes: segment_bytes.max(1),
            state: RwLock::new(State { sealed, active }),
            indexes: Mutex::default(),
        })
    }

    /// An empty journal in `dir`, whatever was there before.
    pub(super) fn reset(dir: &Path, segment_bytes: u64) -> Result<CallLog> {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(dir, e)),
        }
        CallLog::open(dir, segment_bytes)
    }

    fn read_state(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_state(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The sequence number the next record gets.
    pub(super) fn next_seq(&self) -> u64 {
        let state = self.read_state();
        state.active.first_seq + u64::from(state.active.index.len())
    }

    /// Append records (with their encoded payloads) and make them durable; returns the
    /// sequence number of the first, and whether a segment was sealed to make room.
    /// Only one thread appends.
    pub(super) fn append(&self, records: &[(&CallRecord, Vec<u8>)]) -> Result<(u64, bool)> {
        let batch_bytes: u64 = records
            .iter()
            .map(|(_, p)| (FRAME_HEADER + p.len()) as u64)
            .sum();
        let (file, start_len, sealed) = {
            let needs_new = {
                let state = self.read_state();
                state.active.index.len() > 0 && state.active.len + batch_bytes > self.segment_bytes
            };
            if needs_new {
                self.seal_active()?;
            }
            let state = self.read_state();
            (state.active.file.clone(), state.active.len, needs_new)
        };
        let mut buf = Vec::with_capacity(batch_bytes as usize);
        let mut offsets = Vec::with_capacity(records.len());
        for (_, payload) in records {
            offsets.push(start_len + buf.len() as u64);
            buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            buf.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
            buf.extend_from_slice(payload);
        }
        let path = self.active_path();
        (&*file)
            .write_all(&buf)
            .and_then(|()| file.sync_data())
            .map_err(|e| {
                // Whatever part was written is past `len`: the next open cuts it, and
                // the next append overwrites nothing (the file is in append mode), so
                // cut it now to keep offsets true.
                let _ = file.set_len(start_len);
                io_error(&path, e)
            })?;
        let mut state = self.write_state();
        let first = state.active.first_seq + u64::from(state.active.index.len());
        let index = Arc::make_mut(&mut state.active.index);
        for ((record, _), offset) in records.iter().zip(offsets) {
            let offset = u32::try_from(offset).map_err(|_| corrupt(&path, "segment over 4 GiB"))?;
            index.add(offset, record);
        }
        state.active.len = start_len + batch_bytes;
        Ok((first, sealed))
    }

    fn active_path(&self) -> PathBuf {
        segment_path(&self.dir, self.read_state().active.first_seq)
    }

    /// Seal the active segment (write its index) and begin the next.
    fn seal_active(&self) -> Result<()> {
        let (first, mut index, len) = {
            let state = self.read_state();
            (
                state.active.first_seq,
                SegmentIndex::clone(&state.active.index),
                state.active.len,
            )
        };
        index.call_ids.sort_unstable();
        let index_file = index_path(&self.dir, first);
        write_index(&index_file, &index)?;
        let next = new_segment(&self.dir, first + u64::from(index.len()))?;
        let mut state = self.write_state();
        state.sealed.push(Sealed {
            first_seq: first,
            count: index.len(),
            min_end_ms: index.min_end_ms,
            max_end_ms: index.max_end_ms,
            bytes: len + file_len(&index_file)?,
        });
        state.active = next;
        Ok(())
    }

    /// Delete sealed segments whose newest record ended before `cutoff_ms`, and whose
    /// records are all below `applied_seq` (their charges are in the balances).
    pub(super) fn expire(&self, cutoff_ms: u64, applied_seq: u64) -> Result<usize> {
        let doomed: Vec<u64> = self
            .read_state()
            .sealed
            .iter()
            .take_while(|s| {
                s.max_end_ms < cutoff_ms && s.first_seq + u64::from(s.count) <= applied_seq
            })
            .map(|s| s.first_seq)
            .collect();
        for first in &doomed {
            for path in [
                segment_path(&self.dir, *first),
                index_path(&self.dir, *first),
            ] {
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_error(&path, e)),
                }
            }
            self.write_state().sealed.retain(|s| s.first_seq != *first);
            self.cached_indexes().retain(|(f, _)| f != first);
        }
        Ok(doomed.len())
    }

    /// How much is kept.
    pub(super) fn stats(&self) -> CallLogStats {
        let state = self.read_state();
        CallLogStats {
            records: state.sealed.iter().map(|s| u64::from(s.count)).sum::<u64>()
                + u64::from(state.active.index.len()),
            segments: state.sealed.len() as u64 + 1,
            disk_bytes: state.sealed.iter().map(|s| s.bytes).sum::<u64>() + state.active.len,
            active_records: u64::from(state.active.index.len()),
        }
    }

    fn cached_indexes(&self) -> std::sync::MutexGuard<'_, VecDeque<(u64, Arc<SegmentIndex>)>> {
        self.indexes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A sealed segment's index, from the cache or its file.
    fn sealed_index(&self, first: u64) -> Result<Arc<SegmentIndex>> {
        {
            let mut cache = self.cached_indexes();
            if let Some(at) = cache.iter().position(|(f, _)| *f == first) {
                let hit = cache.remove(at).expect("found above");
                let index = hit.1.clone();
                cache.push_back(hit);
                return Ok(index);
            }
        }
        let index = Arc::new(read_index(&index_path(&self.dir, first))?);
        let mut cache = self.cached_indexes();
        if cache.len() >= CACHED_INDEXES {
            cache.pop_front();
        }
        cache.push_back((first, index.clone()));
        Ok(index)
    }

    /// Every segment newest first, with its index and published length.
    fn segments_newest_first(&self) -> Vec<SegmentView> {
        let state = self.read_state();
        let active = SegmentView {
            first_seq: state.active.first_seq,
            count: state.active.index.len(),
            min_end_ms: state.active.index.min_end_ms,
            max_end_ms: state.active.index.max_end_ms,
            len: state.active.len,
            index: Some(state.active.index.clone()),
        };
        std::iter::once(active)
            .chain(state.sealed.iter().rev().map(|s| SegmentView {
                first_seq: s.first_seq,
                count: s.count,
                min_end_ms: s.min_end_ms,
                max_end_ms: s.max_end_ms,
                len: 0,
                index: None,
            }))
            .collect()
    }

    /// A segment's index and length: the active one's as published, a sealed one's
    /// from the cache or its files.
    fn index_of(&self, segment: &SegmentView) -> Result<(Arc<SegmentIndex>, u64)> {
        match &segment.index {
            Some(index) => Ok((index.clone(), segment.len)),
            None => Ok((
                self.sealed_index(segment.first_seq)?,
                file_len(&segment_path(&self.dir, segment.first_seq))?,
            )),
        }
    }

    /// Walk records newest first: those with a sequence number below `before` (all
    /// when `None`), in segments that may hold an end time in `from_ms..to_ms`, and
    /// only `owner`'s when given. `visit` gets each record's sequence number and
    /// payload and says whether to go on.
    pub(super) fn walk_newest_first(
        &self,
        before: Option<u64>,
        from_ms: u64,
        to_ms: u64,
        owner: Option<&str>,
        mut visit: impl FnMut(u64, &[u8]) -> Result<bool>,
    ) -> Result<()> {
        for segment in self.segments_newest_first() {
            if segment.count == 0
                || before.is_some_and(|b| b <= segment.first_seq)
                || segment.max_end_ms < from_ms
                || segment.min_end_ms >= to_ms
            {
                continue;
            }
            let (index, len) = self.index_of(&segment)?;
            let below = before.map_or(segment.count, |b| {
                (b - segment.first_seq).min(u64::from(segment.count)) as u32
            });
            let ordinals: Box<dyn Iterator<Item = u32>> = match owner {
                Some(owner) => match index.owners.get(owner) {
                    Some(list) => {
                        let end = list.partition_point(|o| *o < below);
                        Box::new(list[..end].iter().rev().copied())
                    }
                    None => continue,
                },
                None => Box::new((0..below).rev()),
            };
            let path = segment_path(&self.dir, segment.first_seq);
            let mut reader = SegmentReader::open(&path)?;
            for ordinal in ordinals {
                let (start, end) = index.frame(ordinal, len);
                let payload = reader.frame(start, end)?;
                if !visit(segment.first_seq + u64::from(ordinal), payload)? {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// The newest record with this Call-ID.
    pub(super) fn find(&self, call_id: &str) -> Result<Option<CallRecord>> {
        let hash = call_id_hash(call_id);
        for segment in self.segments_newest_first() {
            let (index, len) = self.index_of(&segment)?;
            // The active segment's Call-IDs are in arrival order; a sealed one's sorted.
            let candidates = index.with_call_id(hash, segment.index.is_none());
            if candidates.is_empty() {
                continue;
            }
            let mut reader = SegmentReader::open(&segment_path(&self.dir, segment.first_seq))?;
            for ordinal in candidates {
                let (start, end) = index.frame(ordinal, len);
                let record = decode(reader.frame(start, end)?)?;
                if record.call_id == call_id {
                    return Ok(Some(record));
                }
            }
        }
        Ok(None)
    }

    /// Every record from sequence number `from` on, oldest first (to replay charges).
    pub(super) fn records_from(
        &self,
        from: u64,
        mut visit: impl FnMut(u64, CallRecord) -> Result<()>,
    ) -> Result<()> {
        let mut segments = self.segments_newest_first();
        segments.reverse();
        for segment in segments {
            if segment.first_seq + u64::from(segment.count) <= from {
                continue;
            }
            let path = segment_path(&self.dir, segment.first_seq);
            let bytes = std::fs::read(&path).map_err(|e| io_error(&path, e))?;
            let skip = from.saturating_sub(segment.first_seq) as usize;
            // Only what was published: the writer may be appending behind it.
            let frames = Frames::new(&bytes).take(segment.count as usize);
            for (ordinal, frame) in frames.enumerate().skip(skip) {
                let (_, payload) =
                    frame.map_err(|at| corrupt(&path, format!("bad frame at {at}")))?;
                visit(segment.first_seq + ordinal as u64, decode(payload)?)?;
            }
        }
        Ok(())
    }
}

/// The frames of a segment's bytes after its magic: (offset, payload), or the offset
/// of the first frame that is torn or fails its CRC (and nothing after it).
struct Frames<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Frames<'a> {
    fn new(bytes: &'a [u8]) -> Frames<'a> {
        Frames {
            bytes,
            at: MAGIC.len(),
        }
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = std::result::Result<(usize, &'a [u8]), usize>;

    fn next(&mut self) -> Option<Self::Item> {
        let at = self.at;
        if at >= self.bytes.len() {
            return None;
        }
        let payload = self
            .bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
            .filter(|len| *len <= MAX_FRAME)
            .and_then(|len| self.bytes.get(at..at + FRAME_HEADER + len as usize))
            .and_then(check_frame);
        match payload {
            Some(payload) => {
                self.at += FRAME_HEADER + payload.len();
                Some(Ok((at, payload)))
            }
            None => {
                self.at = self.bytes.len();
                Some(Err(at))
            }
        }
    }
}

/// A segment as a query sees it: the active one comes with its index in memory.
struct SegmentView {
    first_seq: u64,
    count: u32,
    min_end_ms: u64,
    max_end_ms: u64,
    /// Published length (active segment only).
    len: u64,
    index: Option<Arc<SegmentIndex>>,
}

/// Positioned reads of frames through a window, for walking a segment backwards.
struct SegmentReader {
    path: PathBuf,
    file: File,
    window: Vec<u8>,
    window_start: u64,
}

impl SegmentReader {
    fn open(path: &Path) -> Result<SegmentReader> {
        Ok(SegmentReader {
            path: path.to_path_buf(),
            file: File::open(path).map_err(|e| io_error(path, e))?,
            window: Vec::new(),
            window_start: 0,
        })
    }

    /// The payload of the frame in `start..end`, its CRC checked.
    fn frame(&mut self, start: u64, end: u64) -> Result<&[u8]> {
        let window_end = self.window_start + self.window.len() as u64;
        if start < self.window_start || end > window_end {
            // Read a window ending at this frame: the walk goes backwards.
            let from = end.saturating_sub(READ_WINDOW as u64).min(start);
            self.window.resize((end - from) as usize, 0);
            self.file
                .read_exact_at(&mut self.window, from)
                .map_err(|e| io_error(&self.path, e))?;
            self.window_start = from;
        }
        let at = (start - self.window_start) as usize;
        let frame = &self.window[at..(end - self.window_start) as usize];
        check_frame(frame).ok_or_else(|| corrupt(&self.path, format!("bad frame at {start}")))
    }
}

/// The payload of a whole frame whose length and CRC agree.
fn check_frame(frame: &[u8]) -> Option<&[u8]> {
    let header = frame.get(..FRAME_HEADER)?;
    let len = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().ok()?);
    let payload = frame.get(FRAME_HEADER..FRAME_HEADER + len)?;
    (crc32fast::hash(payload) == crc).then_some(payload)
}

fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:016x}.seg"))
}

fn index_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:016x}.idx"))
}

fn file_len(path: &Path) -> Result<u64> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(m.len()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(io_error(path, e)),
    }
}

/// Create an empty segment whose first record will be `first`, durably.
fn new_segment(dir: &Path, first: u64) -> Result<Active> {
    let path = segment_path(dir, first);
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| io_error(&path, e))?;
    file.set_len(0).map_err(|e| io_error(&path, e))?;
    file.write_all(MAGIC)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error(&path, e))?;
    sync_dir(dir)?;
    Ok(Active {
        first_seq: first,
        file: Arc::new(file),
        len: MAGIC.len() as u64,
        index: Arc::default(),
    })
}

/// Make a directory's entries (a new or renamed file) durable.
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, e))
}

/// Read a segment's frames and index them. `repair`: cut the file at the first torn
/// or corrupt frame (the tail a crash left); otherwise such a frame is an error.
fn scan_segment(path: &Path, repair: bool) -> Result<(SegmentIndex, u64)> {
    let bytes = std::fs::read(path).map_err(|e| io_error(path, e))?;
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        if repair && bytes.len() < MAGIC.len() && MAGIC.starts_with(&bytes) {
            // Created, but the crash came before its header was on disk.
            let mut file = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| io_error(path, e))?;
            file.set_len(0)
                .and_then(|()| file.write_all(MAGIC))
                .and_then(|()| file.sync_all())
                .map_err(|e| io_error(path, e))?;
            return Ok((SegmentIndex::default(), MAGIC.len() as u64));
        }
        return Err(corrupt(path, "not a call-record segment"));
    }
    let mut index = SegmentIndex::default();
    let mut end = MAGIC.len();
    for frame in Frames::new(&bytes) {
        match frame {
            Ok((at, payload)) => {
                index.add(at as u32, &decode(payload)?);
                end = at + FRAME_HEADER + payload.len();
            }
            Err(at) if repair => {
                // A crash mid-write leaves a torn last batch, never acknowledged. The
                // cut bytes are kept beside the segment all the same: damage in the
                // middle of it would look the same from here.
                let kept = path.with_extension(format!("seg.cut-at-{at}"));
                std::fs::write(&kept, &bytes[at..]).map_err(|e| io_error(&kept, e))?;
                tracing::warn!(path = %path.display(), at, cut = bytes.len() - at,
                    kept = %kept.display(), "cutting a torn call-record tail left by a crash");
                let file = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(|e| io_error(path, e))?;
                file.set_len(at as u64)
                    .and_then(|()| file.sync_all())
                    .map_err(|e| io_error(path, e))?;
            }
            Err(at) => return Err(corrupt(path, format!("bad frame at {at}"))),
        }
    }
    Ok((index, end as u64))
}

fn read_index(path: &Path) -> Result<SegmentIndex> {
    let bytes = std::fs::read(path).map_err(|e| io_error(path, e))?;
    let (body, crc) = bytes
        .split_last_chunk::<4>()
        .ok_or_else(|| corrupt(path, "short index"))?;
    if crc32fast::hash(body) != u32::from_le_bytes(*crc) {
        return Err(corrupt(path, "index CRC"));
    }
    rmp_serde::from_slice(body).map_err(|e| corrupt(path, e))
}

/// Write an index durably (to a temporary file renamed into place).
fn write_index(path: &Path, index: &SegmentIndex) -> Result<()> {
    let mut bytes = rmp_serde::to_vec(index).map_err(|e| corrupt(path, e))?;
    bytes.extend_from_slice(&crc32fast::hash(&bytes).to_le_bytes());
    let tmp = path.with_extension("idx.tmp");
    let write = || -> std::io::Result<()> {
        let mut file = File::create(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| io_error(path, e))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}
