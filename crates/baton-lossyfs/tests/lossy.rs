//! The lossy filesystem through a real mount, with real system calls: what
//! an fsync covered survives a power cut, what it did not is gone, and a
//! rename no directory fsync covered may be undone.

use std::{
    fs::{self, File, OpenOptions},
    io::Write,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use baton_lossyfs::{Durability, LossyError, LossyFs, Options};

struct Mounted {
    fs: LossyFs,
    _dir: tempfile::TempDir,
}

impl Mounted {
    fn path(&self, name: &str) -> PathBuf {
        self.fs.mountpoint().join(name)
    }
}

fn mount(durability: Durability) -> Mounted {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = Options {
        durability,
        tear: false,
        seed: 1,
    };
    let fs = LossyFs::mount(&dir.path().join("disk"), &dir.path().join("mnt"), options)
        .unwrap_or_else(|e| panic!("{e}"));
    Mounted { fs, _dir: dir }
}

fn write_file(path: &Path, bytes: &[u8]) -> File {
    let mut file = File::create(path).expect("create");
    file.write_all(bytes).expect("write");
    file
}

fn fsync_dir(path: &Path) {
    File::open(path)
        .expect("open the directory")
        .sync_all()
        .expect("fsync the directory");
}

fn read(path: &Path) -> Option<Vec<u8>> {
    match fs::read(path) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("reading {}: {e}", path.display()),
    }
}

#[test]
fn fsynced_data_survives_a_power_cut() {
    for durability in [Durability::Journaled, Durability::Strict] {
        let m = mount(durability);
        fs::create_dir(m.path("d")).expect("mkdir");
        fsync_dir(m.fs.mountpoint());
        let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
        let file = write_file(&m.path("d/f"), &bytes);
        file.sync_all().expect("fsync");
        fsync_dir(&m.path("d"));
        drop(file);
        let outage = m.fs.cut_power(&[]).expect("power cut");
        assert_eq!(outage.unsynced_bytes(), 0, "{durability:?}: {outage:?}");
        assert_eq!(
            read(&m.path("d/f")),
            Some(bytes),
            "{durability:?}: fsynced data is read back after the cut"
        );
    }
}

#[test]
fn data_no_fsync_covered_is_gone() {
    let m = mount(Durability::Journaled);
    let file = write_file(&m.path("log"), b"synced;");
    file.sync_all().expect("fsync");
    file.write_all_at(b"not synced", 7).expect("append");
    file.write_all_at(b"SYNCED", 0).expect("overwrite");
    assert_eq!(
        read(&m.path("log")).as_deref(),
        Some(&b"SYNCED;not synced"[..]),
        "before the cut every write is read back"
    );
    write_file(&m.path("never-synced"), b"gone");
    drop(file);
    let outage = m.fs.cut_power(&[]).expect("power cut");
    assert!(outage.unsynced_bytes() > 0, "{outage:?}");
    assert_eq!(read(&m.path("log")).as_deref(), Some(&b"synced;"[..]));
    assert_eq!(
        read(&m.path("never-synced")),
        None,
        "its creation is undone"
    );
}

/// O_SYNC and O_DSYNC writes are on the disk when write(2) returns.
#[test]
fn a_write_through_an_o_sync_descriptor_needs_no_fsync() {
    use std::os::unix::fs::OpenOptionsExt;
    const O_SYNC: i32 = 0o4010000;
    const O_DSYNC: i32 = 0o10000;
    let m = mount(Durability::Journaled);
    for (name, flag) in [("sync", O_SYNC), ("dsync", O_DSYNC)] {
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .custom_flags(flag)
            .open(m.path(name))
            .expect("open");
        file.write_all(b"on the disk").expect("write");
    }
    m.fs.cut_power(&[]).expect("power cut");
    for name in ["sync", "dsync"] {
        assert_eq!(
            read(&m.path(name)).as_deref(),
            Some(&b"on the disk"[..]),
            "{name}"
        );
    }
}

#[test]
fn a_truncation_no_fsync_covered_is_undone() {
    let m = mount(Durability::Journaled);
    let file = write_file(&m.path("f"), &[1u8; 10_000]);
    file.sync_all().expect("fsync");
    file.set_len(10).expect("truncate");
    assert_eq!(read(&m.path("f")).map(|b| b.len()), Some(10));
    drop(file);
    m.fs.cut_power(&[]).expect("power cut");
    assert_eq!(read(&m.path("f")), Some(vec![1u8; 10_000]));
}

/// Write a temporary file, fsync it, rename it over the real one: the
/// usual atomic replace. Without an fsync of the directory after the rename
/// the old contents may come back.
#[test]
fn a_rename_no_directory_fsync_covered_may_be_undone() {
    for durability in [Durability::Journaled, Durability::Strict] {
        let m = mount(durability);
        write_file(&m.path("conf"), b"old")
            .sync_all()
            .expect("fsync");
        fsync_dir(m.fs.mountpoint());
        write_file(&m.path("conf.tmp"), b"new")
            .sync_all()
            .expect("fsync");
        fs::rename(m.path("conf.tmp"), m.path("conf")).expect("rename");
        assert_eq!(read(&m.path("conf")).as_deref(), Some(&b"new"[..]));
        m.fs.cut_power(&[]).expect("power cut");
        assert_eq!(
            read(&m.path("conf")).as_deref(),
            Some(&b"old"[..]),
            "{durability:?}: the rename is undone"
        );
    }
}

#[test]
fn a_rename_followed_by_a_directory_fsync_stays() {
    for durability in [Durability::Journaled, Durability::Strict] {
        let m = mount(durability);
        write_file(&m.path("conf"), b"old")
            .sync_all()
            .expect("fsync");
        fsync_dir(m.fs.mountpoint());
        write_file(&m.path("conf.tmp"), b"new")
            .sync_all()
            .expect("fsync");
        fs::rename(m.path("conf.tmp"), m.path("conf")).expect("rename");
        fsync_dir(m.fs.mountpoint());
        m.fs.cut_power(&[]).expect("power cut");
        assert_eq!(read(&m.path("conf")).as_deref(), Some(&b"new"[..]));
        assert_eq!(read(&m.path("conf.tmp")), None);
    }
}

/// Only the strict model tells a file's fsync from its directory's.
#[test]
fn strictly_a_new_file_needs_its_directory_fsynced() {
    let m = mount(Durability::Strict);
    write_file(&m.path("new"), b"data")
        .sync_all()
        .expect("fsync the file only");
    m.fs.cut_power(&[]).expect("power cut");
    assert_eq!(read(&m.path("new")), None);

    let m = mount(Durability::Journaled);
    write_file(&m.path("new"), b"data")
        .sync_all()
        .expect("fsync the file only");
    m.fs.cut_power(&[]).expect("power cut");
    assert_eq!(read(&m.path("new")).as_deref(), Some(&b"data"[..]));
}

#[test]
fn a_torn_write_leaves_a_prefix_of_itself_and_repeats_with_its_seed() {
    let tear = |seed: u64| {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = Options {
            durability: Durability::Journaled,
            tear: true,
            seed,
        };
        let fs = LossyFs::mount(&dir.path().join("disk"), &dir.path().join("mnt"), options)
            .unwrap_or_else(|e| panic!("{e}"));
        let path = fs.mountpoint().join("f");
        let file = write_file(&path, b"head;");
        file.sync_all().expect("fsync");
        file.write_all_at(&[b'x'; 3000], 5).expect("write");
        drop(file);
        let outage = fs.cut_power(&[]).expect("power cut");
        let torn = outage.torn.expect("the last write is torn");
        let back = read(&path).expect("the file");
        assert_eq!(back.len(), 5 + torn.kept, "{torn:?}");
        assert_eq!(&back[..5], b"head;");
        assert!(back[5..].iter().all(|b| *b == b'x'));
        torn.kept
    };
    assert_eq!(tear(7), tear(7), "one seed, one tear");
}

/// Every process on the filesystem dies with the power: one that was not
/// named is refused, one that was is SIGKILLed.
#[test]
fn a_power_cut_kills_its_victims_and_refuses_to_leave_others_running() {
    let m = mount(Durability::Journaled);
    let marker = m.path("written-by-the-child");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("echo hi > '{}'; exec sleep 600", marker.display()))
        .stdin(Stdio::null())
        .spawn()
        .expect("start sh");
    let deadline = Instant::now() + Duration::from_secs(10);
    while read(&marker).as_deref() != Some(&b"hi\n"[..]) {
        assert!(Instant::now() < deadline, "the child never wrote");
        std::thread::sleep(Duration::from_millis(5));
    }
    match m.fs.cut_power(&[]) {
        Err(LossyError::Survivors(survivors)) => {
            assert!(
                survivors.iter().any(|(pid, _)| *pid == child.id()),
                "{survivors:?}"
            );
        }
        other => panic!("a power cut left the child running: {other:?}"),
    }
    assert_eq!(
        read(&marker).as_deref(),
        Some(&b"hi\n"[..]),
        "a refused cut throws nothing away"
    );
    m.fs.cut_power(&[child.id()]).expect("power cut");
    let status = match child.try_wait().expect("the child's status") {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the power cut returned with its victim still running");
        }
    };
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "killed by SIGKILL: {status:?}");
    assert_eq!(read(&marker), None, "its unsynced file is gone");
}

/// Ordinary use: directories, listing, renames across directories,
/// removal, reading while writing, large files in pieces.
#[test]
fn it_behaves_as_a_filesystem_between_outages() {
    let m = mount(Durability::Journaled);
    fs::create_dir_all(m.path("a/b/c")).expect("mkdir -p");
    write_file(&m.path("a/b/c/one"), b"1");
    write_file(&m.path("a/two"), b"22");
    let mut names: Vec<String> = fs::read_dir(m.path("a"))
        .expect("readdir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["b", "two"]);
    fs::rename(m.path("a/b"), m.path("moved")).expect("rename a directory");
    assert_eq!(read(&m.path("moved/c/one")).as_deref(), Some(&b"1"[..]));
    assert!(
        fs::rename(m.path("moved"), m.path("moved/c/inside")).is_err(),
        "not into itself"
    );
    assert!(fs::remove_dir(m.path("moved")).is_err(), "not empty");
    fs::remove_file(m.path("moved/c/one")).expect("unlink");
    fs::remove_dir(m.path("moved/c")).expect("rmdir");
    let mut big = OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .truncate(true)
        .open(m.path("big"))
        .expect("open");
    let chunk: Vec<u8> = (0..=255u8).cycle().take(1 << 20).collect();
    for _ in 0..4 {
        big.write_all(&chunk).expect("write a MiB");
    }
    let mut back = vec![0u8; 1 << 20];
    big.read_exact_at(&mut back, 3 << 20).expect("read it back");
    assert_eq!(back, chunk);
    assert_eq!(big.metadata().expect("stat").len(), 4 << 20);
    assert!(
        File::create(m.fs.mountpoint().join(".lossyfs-staging")).is_err(),
        "the staging directory's name is reserved"
    );
    big.sync_all().expect("fsync");
    drop(big);
    m.fs.sync_all().expect("sync");
    m.fs.cut_power(&[]).expect("power cut");
    assert_eq!(read(&m.path("a/two")).as_deref(), Some(&b"22"[..]));
    assert_eq!(read(&m.path("big")).map(|b| b.len()), Some(4 << 20));
    assert_eq!(
        fs::read_dir(m.path("moved")).expect("readdir").count(),
        0,
        "the removals were synced too"
    );
}
