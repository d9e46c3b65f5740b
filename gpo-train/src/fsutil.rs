//! File writes that never leave a half-written file behind, and reads that never take more than
//! a stated number of bytes.

use std::fmt;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Largest run configuration `gpo run` reads (1 MiB): a TOML file of a few dozen lines.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// Largest single survey file a loader reads (1 GiB): the whole OpinionQA release is ~60 MB,
/// GlobalOpinionQA ~10 MB.
pub const MAX_SURVEY_BYTES: u64 = 1 << 30;
/// Largest embedding cache read (4 GiB): ~1 million 2048-d f16 vectors.
pub const MAX_CACHE_BYTES: u64 = 4 << 30;
/// Largest training checkpoint read (4 GiB): model, optimizer state and best model of a
/// network far larger than the configuration bounds allow.
pub const MAX_CHECKPOINT_BYTES: u64 = 4 << 30;

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, flushed and
/// synced, then renamed over `path`. Creates the parent directory if needed.
///
/// The temporary file is `.{name}.{pid}-{n}.tmp` beside `path`; a process killed mid-write leaves
/// it behind ([`remove_stale_temporaries`] clears them).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = parent_dir(path);
    std::fs::create_dir_all(dir)?;
    let name = file_name(path);
    // Unique per process and call, so concurrent writers never share a temporary file.
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let temp = dir.join(format!(".{name}.{}-{n}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

fn parent_dir(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

fn file_name(path: &Path) -> &str {
    path.file_name().and_then(|n| n.to_str()).unwrap_or("file")
}

/// If `candidate` is a temporary file name that [`write_atomic`] makes (`.{name}.{pid}-{n}.tmp`),
/// its target name and the pid that made it.
fn temporary_of(candidate: &str) -> Option<(&str, u32)> {
    let rest = candidate.strip_prefix('.')?.strip_suffix(".tmp")?;
    let (name, tag) = rest.rsplit_once('.')?;
    let (pid, n) = tag.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (!name.is_empty() && digits(pid) && digits(n)).then(|| Some((name, pid.parse().ok()?))).flatten()
}

/// Removes the temporary files that a [`write_atomic`] of `path` killed mid-write left behind
/// (those of other processes: this process's own writes clean up after themselves). Returns the
/// paths removed. A missing folder has nothing to remove.
pub fn remove_stale_temporaries(path: &Path) -> io::Result<Vec<PathBuf>> {
    let name = file_name(path);
    remove_stale(parent_dir(path), |target| target == name)
}

/// [`remove_stale_temporaries`] for every target in `dir` (not its subfolders).
pub fn remove_stale_temporaries_in(dir: &Path) -> io::Result<Vec<PathBuf>> {
    remove_stale(dir, |_| true)
}

fn remove_stale(dir: &Path, wanted: impl Fn(&str) -> bool) -> io::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut removed = Vec::new();
    for entry in entries {
        let entry = entry?;
        let file = entry.file_name();
        let Some((target, pid)) = file.to_str().and_then(temporary_of) else { continue };
        if !wanted(target) || pid == std::process::id() || !entry.file_type()?.is_file() {
            continue;
        }
        std::fs::remove_file(entry.path())?;
        removed.push(entry.path());
    }
    Ok(removed)
}

/// The error of [`read_capped`]: the file and what went wrong, displayed as `{path}: {reason}`.
#[derive(Debug)]
pub struct ReadError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong, without the path.
    pub reason: String,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

impl std::error::Error for ReadError {}

fn read_error(path: &Path, kind: io::ErrorKind, reason: String) -> io::Error {
    io::Error::new(kind, ReadError { path: path.to_path_buf(), reason })
}

/// What went wrong in an error of [`read_capped`], without the path (for errors that name the
/// file themselves); any other error as it displays.
pub fn reason(error: &io::Error) -> String {
    match error.get_ref().and_then(|e| e.downcast_ref::<ReadError>()) {
        Some(e) => e.reason.clone(),
        None => error.to_string(),
    }
}

/// An error of [`read_capped`] with the path taken out of its message (kind kept), for error
/// types that name the file themselves; any other error unchanged.
pub fn without_path(error: io::Error) -> io::Error {
    match error.get_ref().and_then(|e| e.downcast_ref::<ReadError>()) {
        Some(e) => io::Error::new(error.kind(), e.reason.clone()),
        None => error,
    }
}

/// Reads the whole of `path`, refusing files larger than `max_bytes`.
///
/// Never reads more than `max_bytes + 1` bytes, whatever the file claims to hold, so endless
/// files such as `/dev/zero` are refused too. Errors name the file: `{path}: No such file or
/// directory`, `{path}: larger than {max_bytes} bytes`, `{path}: Is a directory (os error 21)`
/// (the kind of the operating system's error is kept; [`reason`] gives the text without the path).
pub fn read_capped(path: &Path, max_bytes: u64) -> io::Result<Vec<u8>> {
    let io_error = |e: io::Error| {
        let text = match e.kind() {
            io::ErrorKind::NotFound => "No such file or directory".to_string(),
            _ => e.to_string(),
        };
        read_error(path, e.kind(), text)
    };
    let file = std::fs::File::open(path).map_err(io_error)?;
    // The length is only a capacity hint: special files report 0, and files can grow.
    let hint = file.metadata().map(|m| m.len()).unwrap_or(0).min(max_bytes.saturating_add(1));
    let mut bytes = Vec::with_capacity(usize::try_from(hint).unwrap_or(0));
    file.take(max_bytes.saturating_add(1)).read_to_end(&mut bytes).map_err(io_error)?;
    if bytes.len() as u64 > max_bytes {
        return Err(read_error(path, io::ErrorKind::FileTooLarge, format!("larger than {max_bytes} bytes")));
    }
    Ok(bytes)
}

/// [`read_capped`] for UTF-8 text; invalid UTF-8 is an error naming the file and the byte offset.
pub fn read_capped_to_string(path: &Path, max_bytes: u64) -> io::Result<String> {
    String::from_utf8(read_capped(path, max_bytes)?).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        read_error(path, io::ErrorKind::InvalidData, format!("not valid UTF-8 (at byte {offset})"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_capped_reads_small_files_and_refuses_large_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.txt");
        std::fs::write(&path, "hello").unwrap();
        assert_eq!(read_capped(&path, 5).unwrap(), b"hello");
        assert_eq!(read_capped_to_string(&path, 100).unwrap(), "hello");
        let e = read_capped(&path, 4).unwrap_err();
        assert_eq!(e.to_string(), format!("{}: larger than 4 bytes", path.display()));
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
        assert_eq!(reason(&e), "larger than 4 bytes");
        assert_eq!(without_path(e).to_string(), "larger than 4 bytes");
    }

    #[test]
    fn read_capped_refuses_endless_files() {
        let zero = Path::new("/dev/zero");
        if !zero.exists() {
            return;
        }
        let e = read_capped(zero, 1 << 16).unwrap_err();
        assert_eq!(e.to_string(), "/dev/zero: larger than 65536 bytes");
    }

    #[test]
    fn read_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.csv");
        let e = read_capped(&missing, 10).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert_eq!(e.to_string(), format!("{}: No such file or directory", missing.display()));
        let e = read_capped(dir.path(), 10).unwrap_err();
        assert!(e.to_string().starts_with(&dir.path().display().to_string()), "{e}");
        let bad = dir.path().join("bad.txt");
        std::fs::write(&bad, b"ok\xff").unwrap();
        let e = read_capped_to_string(&bad, 10).unwrap_err();
        assert_eq!(e.to_string(), format!("{}: not valid UTF-8 (at byte 2)", bad.display()));
    }

    #[test]
    fn stale_temporaries_are_recognised_and_removed() {
        assert_eq!(temporary_of(".run.ckpt.123-4.tmp"), Some(("run.ckpt", 123)));
        assert_eq!(temporary_of(".model.gpo.7-0.tmp"), Some(("model.gpo", 7)));
        assert_eq!(temporary_of(".run.ckpt.x-4.tmp"), None);
        assert_eq!(temporary_of(".run.ckpt.123-.tmp"), None);
        assert_eq!(temporary_of("..123-4.tmp"), None);
        assert_eq!(temporary_of("run.ckpt"), None);
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("run.ckpt");
        let stale = dir.path().join(format!(".run.ckpt.{}-0.tmp", std::process::id().wrapping_add(1)));
        let other = dir.path().join(".other.ckpt.1-0.tmp");
        // This process's own temporary file (a number its writes in this test never reach).
        let own = dir.path().join(format!(".run.ckpt.{}-987654321.tmp", std::process::id()));
        for p in [&stale, &other, &own] {
            std::fs::write(p, b"partial").unwrap();
        }
        assert_eq!(remove_stale_temporaries(&target).unwrap(), std::slice::from_ref(&stale));
        assert!(!stale.exists() && other.exists() && own.exists());
        assert!(remove_stale_temporaries(&dir.path().join("no/such/dir/x")).unwrap().is_empty());
        write_atomic(&target, b"data").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"data");
        // Folder-wide: every target's stale files, not this process's own, nothing else.
        let stale = dir.path().join(format!(".model.gpo.{}-3.tmp", std::process::id().wrapping_add(1)));
        let plain = dir.path().join("notes.tmp");
        std::fs::write(&stale, b"partial").unwrap();
        std::fs::write(&plain, b"mine").unwrap();
        let mut removed = remove_stale_temporaries_in(dir.path()).unwrap();
        removed.sort();
        let mut want = vec![other.clone(), stale.clone()];
        want.sort();
        assert_eq!(removed, want);
        assert!(own.exists() && plain.exists() && target.exists());
    }
}
