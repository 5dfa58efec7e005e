//! `attendance-api import DIR --class CLASS`: a local folder of roll-number folders
//! (and optionally `students.csv`) registered as one batch, exactly as an upload to
//! `POST /students/batches` is: the folder is packed into a temporary ZIP (symbolic
//! links kept as links, so that they are refused and reported like uploaded ones),
//! streamed into the blob store, unpacked and registered by the workers.

use std::{
    fs::File,
    io::{self, BufWriter},
    path::Path,
};

use zip::{CompressionMethod, ZipWriter, write::SimpleFileOptions};

/// Packs every file under `dir` (relative names, `/`-separated) into a ZIP at `out`;
/// returns the number of entries. Photos are stored, not deflated: they are
/// compressed already.
pub fn zip_folder(dir: &Path, out: &Path) -> io::Result<usize> {
    let mut zip = ZipWriter::new(BufWriter::new(File::create(out)?));
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Stored)
        .large_file(false);
    let mut count = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&folder)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let name = path
                .strip_prefix(dir)
                .expect("walked from dir")
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            let kind = entry.file_type()?;
            if kind.is_symlink() {
                let target = std::fs::read_link(&path)?;
                zip.add_symlink(name, target.to_string_lossy(), options)
                    .map_err(io::Error::other)?;
                count += 1;
            } else if kind.is_dir() {
                stack.push(path);
            } else {
                zip.start_file(name, options).map_err(io::Error::other)?;
                io::copy(&mut File::open(&path)?, &mut zip)?;
                count += 1;
            }
        }
    }
    zip.finish().map_err(io::Error::other)?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_become_entries_and_links_stay_links() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("21CS001")).unwrap();
        std::fs::write(dir.path().join("21CS001/a.jpg"), b"photo").unwrap();
        std::fs::write(dir.path().join("students.csv"), b"roll_no,name\n").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("21CS001/link.jpg")).unwrap();
        let out = tempfile::NamedTempFile::new().unwrap();
        zip_folder(dir.path(), out.path()).unwrap();
        let mut archive = zip::ZipArchive::new(File::open(out.path()).unwrap()).unwrap();
        let mut names: Vec<String> = archive.file_names().map(str::to_string).collect();
        names.sort();
        #[cfg(unix)]
        {
            assert_eq!(names, ["21CS001/a.jpg", "21CS001/link.jpg", "students.csv"]);
            assert!(archive.by_name("21CS001/link.jpg").unwrap().is_symlink());
        }
        let mut photo = String::new();
        io::Read::read_to_string(&mut archive.by_name("21CS001/a.jpg").unwrap(), &mut photo)
            .unwrap();
        assert_eq!(photo, "photo");
    }
}
