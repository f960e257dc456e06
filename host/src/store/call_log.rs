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

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use serde::Serialize;

use super::Result;

mod format;

use format::*;
pub(super) use format::{decode, encode};
use switchyard_model::CallRecord;

/// Sealed segments' indexes kept in memory for queries.
const CACHED_INDEXES: usize = 4;
/// Default size at which a segment is sealed and a new one begun.
pub(super) const DEFAULT_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

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
