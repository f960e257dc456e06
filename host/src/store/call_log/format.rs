//! The journal's files: frames of records in segment files, and the index beside
//! each sealed segment (see the layout in [`super`]).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::store::{Error, Result};
use switchyard_model::CallRecord;

/// First bytes of every segment file (format version 1).
pub(super) const MAGIC: &[u8; 8] = b"SYCDR1\n\0";
/// Frame header: payload length and CRC.
pub(super) const FRAME_HEADER: usize = 8;
/// Bytes read at once when a query walks a segment backwards.
pub(super) const READ_WINDOW: usize = 256 * 1024;

/// A frame longer than this is corruption, not a record.
pub(super) const MAX_FRAME: u32 = 16 * 1024 * 1024;

/// What a segment's index knows: where each record is, its Call-ID's hash, and which
/// records each owner (account or gateway) has.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(super) struct SegmentIndex {
    /// Earliest and latest end time of its records, Unix ms.
    pub(super) min_end_ms: u64,
    pub(super) max_end_ms: u64,
    /// Byte offset of every record's frame, in order: a record's ordinal indexes this.
    pub(super) offsets: Vec<u32>,
    /// (hash of the Call-ID, ordinal); sorted by hash once sealed.
    pub(super) call_ids: Vec<(u64, u32)>,
    /// Owner → ordinals of its records, ascending.
    pub(super) owners: BTreeMap<String, Vec<u32>>,
}

impl SegmentIndex {
    pub(super) fn add(&mut self, offset: u32, record: &CallRecord) {
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

    pub(super) fn len(&self) -> u32 {
        self.offsets.len() as u32
    }

    /// Where record `ordinal`'s frame lies in a segment of `len` bytes.
    pub(super) fn frame(&self, ordinal: u32, len: u64) -> (u64, u64) {
        let start = u64::from(self.offsets[ordinal as usize]);
        let end = self
            .offsets
            .get(ordinal as usize + 1)
            .map_or(len, |o| u64::from(*o));
        (start, end)
    }

    /// Ordinals of records with this Call-ID's hash, newest first.
    pub(super) fn with_call_id(&self, hash: u64, sorted: bool) -> Vec<u32> {
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
pub(super) fn call_id_hash(call_id: &str) -> u64 {
    call_id.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

pub(super) fn io_error(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source,
    }
}

pub(super) fn corrupt(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::Corrupt(format!("{}: {what}", path.display()))
}

/// A record as stored.
pub(in crate::store) fn encode(record: &CallRecord) -> Result<Vec<u8>> {
    rmp_serde::to_vec(record).map_err(|e| Error::Corrupt(format!("encoding a call record: {e}")))
}

/// A stored record.
pub(in crate::store) fn decode(payload: &[u8]) -> Result<CallRecord> {
    rmp_serde::from_slice(payload)
        .map_err(|e| Error::Corrupt(format!("decoding a call record: {e}")))
}

/// The frames of a segment's bytes after its magic: (offset, payload), or the offset
/// of the first frame that is torn or fails its CRC (and nothing after it).
pub(super) struct Frames<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Frames<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Frames<'a> {
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

/// Positioned reads of frames through a window, for walking a segment backwards.
pub(super) struct SegmentReader {
    path: PathBuf,
    file: File,
    window: Vec<u8>,
    window_start: u64,
}

impl SegmentReader {
    pub(super) fn open(path: &Path) -> Result<SegmentReader> {
        Ok(SegmentReader {
            path: path.to_path_buf(),
            file: File::open(path).map_err(|e| io_error(path, e))?,
            window: Vec::new(),
            window_start: 0,
        })
    }

    /// The payload of the frame in `start..end`, its CRC checked.
    pub(super) fn frame(&mut self, start: u64, end: u64) -> Result<&[u8]> {
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
pub(super) fn check_frame(frame: &[u8]) -> Option<&[u8]> {
    let header = frame.get(..FRAME_HEADER)?;
    let len = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().ok()?);
    let payload = frame.get(FRAME_HEADER..FRAME_HEADER + len)?;
    (crc32fast::hash(payload) == crc).then_some(payload)
}

pub(super) fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:016x}.seg"))
}

pub(super) fn index_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:016x}.idx"))
}

pub(super) fn file_len(path: &Path) -> Result<u64> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(m.len()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(io_error(path, e)),
    }
}

/// Make a directory's entries (a new or renamed file) durable.
pub(super) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, e))
}

/// Read a segment's frames and index them. `repair`: cut the file at the first torn
/// or corrupt frame (the tail a crash left); otherwise such a frame is an error.
pub(super) fn scan_segment(path: &Path, repair: bool) -> Result<(SegmentIndex, u64)> {
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

pub(super) fn read_index(path: &Path) -> Result<SegmentIndex> {
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
pub(super) fn write_index(path: &Path, index: &SegmentIndex) -> Result<()> {
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
