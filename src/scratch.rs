//! Scratch entries beside a user's files (a partial file, a staging folder, a write probe): each
//! made under a name that was free at that moment, so that making it, and removing it after,
//! never touches a file or folder that was already there (one a user named so, or one an earlier
//! run that was killed left behind).

use std::path::{Path, PathBuf};

/// Makes an entry named `{stem}-{pid}-{n}` in `dir` with `make` (a `create_new` open or a
/// `create_dir`, which fail with `AlreadyExists` on a taken name), for the first `n` whose name
/// is free; returns its path and what `make` returned.
pub(crate) fn create_fresh<T>(dir: &Path, stem: &str, make: impl Fn(&Path) -> std::io::Result<T>) -> std::io::Result<(PathBuf, T)> {
    for n in 0.. {
        let path = dir.join(format!("{stem}-{}-{n}", std::process::id()));
        match make(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            made => return made.map(|made| (path, made)),
        }
    }
    unreachable!("a free name is found before n runs out")
}

/// [`create_fresh`] of an empty file.
pub(crate) fn create_fresh_file(dir: &Path, stem: &str) -> std::io::Result<(PathBuf, std::fs::File)> {
    create_fresh(dir, stem, |path| std::fs::OpenOptions::new().write(true).create_new(true).open(path))
}

#[cfg(test)]
mod tests {
    use super::{create_fresh, create_fresh_file};

    #[test]
    fn a_taken_name_is_skipped_and_kept() {
        let dir = std::env::temp_dir().join(format!("yoco-scratch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let taken = dir.join(format!(".probe-{}-0", std::process::id()));
        std::fs::write(&taken, b"a user's file").unwrap();
        let taken_folder = dir.join(format!(".staging-{}-0", std::process::id()));
        std::fs::create_dir_all(&taken_folder).unwrap();
        let (file, _) = create_fresh_file(&dir, ".probe").unwrap();
        assert_eq!(file, dir.join(format!(".probe-{}-1", std::process::id())));
        let (folder, ()) = create_fresh(&dir, ".staging", |path| std::fs::create_dir(path)).unwrap();
        assert_eq!(folder, dir.join(format!(".staging-{}-1", std::process::id())));
        assert_eq!(std::fs::read(&taken).unwrap(), b"a user's file");
        assert!(taken_folder.is_dir());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
