//! The FUSE side: kernel requests answered from the [`Model`].
//!
//! Every open file is opened with `FOPEN_DIRECT_IO` and the kernel's
//! writeback cache is never requested, so the kernel keeps no file data of
//! its own: every write reaches the model when the process makes it, and
//! every read is answered by the model. Entries and attributes are cached for
//! no time at all, so after an outage a process resolving a path sees the
//! disk's namespace at once.

use std::{
    ffi::OsStr,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, SystemTime},
};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use crate::{
    model::{self, Attr, Kind, Model, PAGE},
    users::Users,
};

/// Nothing the kernel learns about entries or attributes is kept.
const TTL: Duration = Duration::ZERO;

/// What the FUSE threads and the test's handle share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) model: Mutex<Model>,
    pub(crate) users: Mutex<Users>,
}

impl Shared {
    pub(crate) fn model(&self) -> MutexGuard<'_, Model> {
        // A panic while holding the lock leaves the model as it was between
        // two requests: every change is made before the next one starts.
        self.model.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn users(&self) -> MutexGuard<'_, Users> {
        self.users.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The filesystem fuser runs.
#[derive(Debug)]
pub(crate) struct LossyFuse {
    pub(crate) shared: Arc<Shared>,
}

fn errno(e: model::Errno) -> Errno {
    Errno::from_i32(e.0)
}

fn file_type(kind: Kind) -> FileType {
    match kind {
        Kind::File => FileType::RegularFile,
        Kind::Dir => FileType::Directory,
    }
}

fn file_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.size.div_ceil(512),
        atime: a.atime,
        mtime: a.mtime,
        ctime: a.ctime,
        crtime: a.ctime,
        kind: file_type(a.kind),
        perm: a.perm,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: 0,
        blksize: PAGE as u32,
        flags: 0,
    }
}

fn time(t: TimeOrNow) -> SystemTime {
    match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    }
}

impl LossyFuse {
    /// Notes who is using the filesystem, so an outage can tell whether a
    /// process that should have died with the power was left running.
    fn saw(&self, req: &Request) {
        self.shared.users().saw(req.pid());
    }

    fn entry(&self, reply: ReplyEntry, answer: model::Answer<Attr>) {
        match answer {
            Ok(attr) => reply.entry(&TTL, &file_attr(&attr), Generation(0)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn empty(reply: ReplyEmpty, answer: model::Answer<()>) {
        match answer {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }
}

impl Filesystem for LossyFuse {
    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.saw(req);
        let answer = self.shared.model().lookup(parent.0, name);
        self.entry(reply, answer);
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.shared.model().forget(ino.0, nlookup);
    }

    fn getattr(&self, req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        self.saw(req);
        match self.shared.model().attr(ino.0) {
            Ok(attr) => reply.attr(&TTL, &file_attr(&attr)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        self.saw(req);
        let answer = self.shared.model().set_attr(
            ino.0,
            mode.map(|m| (m & 0o7777) as u16),
            uid,
            gid,
            size,
            atime.map(time),
            mtime.map(time),
        );
        match answer {
            Ok(attr) => reply.attr(&TTL, &file_attr(&attr)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        self.saw(req);
        if mode & libc::S_IFMT != libc::S_IFREG {
            // Devices, fifos and sockets: nothing Baton's processes make.
            reply.error(Errno::EPERM);
            return;
        }
        let perm = (mode & !umask & 0o7777) as u16;
        let answer =
            self.shared
                .model()
                .create(parent.0, name, Kind::File, perm, req.uid(), req.gid());
        self.entry(reply, answer);
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        self.saw(req);
        let perm = (mode & !umask & 0o7777) as u16;
        let answer =
            self.shared
                .model()
                .create(parent.0, name, Kind::Dir, perm, req.uid(), req.gid());
        self.entry(reply, answer);
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.saw(req);
        let answer = self.shared.model().remove(parent.0, name, Kind::File);
        Self::empty(reply, answer);
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.saw(req);
        let answer = self.shared.model().remove(parent.0, name, Kind::Dir);
        Self::empty(reply, answer);
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        self.saw(req);
        if flags.intersects(RenameFlags::RENAME_EXCHANGE | RenameFlags::RENAME_WHITEOUT) {
            reply.error(Errno::EINVAL);
            return;
        }
        let noreplace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        let answer = self
            .shared
            .model()
            .rename(parent.0, name, newparent.0, newname, noreplace);
        Self::empty(reply, answer);
    }

    fn open(&self, req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        self.saw(req);
        match self.shared.model().open_file(ino.0) {
            Ok(()) => reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        self.saw(req);
        let perm = (mode & !umask & 0o7777) as u16;
        let mut model = self.shared.model();
        let answer = model
            .create(parent.0, name, Kind::File, perm, req.uid(), req.gid())
            .and_then(|attr| model.open_file(attr.ino).map(|()| attr));
        match answer {
            Ok(attr) => reply.created(
                &TTL,
                &file_attr(&attr),
                Generation(0),
                FileHandle(0),
                FopenFlags::FOPEN_DIRECT_IO,
            ),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn read(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        self.saw(req);
        match self.shared.model().read(ino.0, offset, size) {
            Ok(bytes) => reply.data(&bytes),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn write(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        self.saw(req);
        let mut model = self.shared.model();
        let mut answer = model.write(ino.0, offset, data);
        // O_SYNC and O_DSYNC (of the open file, or of this one write) make
        // the write an fsync'd one: with direct I/O the kernel leaves that
        // to the filesystem. nats-server writes its metadata files so.
        if answer.is_ok() && flags.0 & (libc::O_SYNC | libc::O_DSYNC) != 0 {
            if let Err(e) = model.fsync(ino.0) {
                answer = Err(e);
            }
        }
        match answer {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // close(2) is not a sync: nothing reaches the disk.
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.shared.model().release(ino.0);
        reply.ok();
    }

    fn fsync(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.saw(req);
        let answer = self.shared.model().fsync(ino.0);
        Self::empty(reply, answer);
    }

    fn readdir(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        self.saw(req);
        let entries = match self.shared.model().entries(ino.0) {
            Ok(entries) => entries,
            Err(e) => {
                reply.error(errno(e));
                return;
            }
        };
        for (i, (child, kind, name)) in entries.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(*child), i as u64 + 1, file_type(*kind), name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.saw(req);
        let answer = self.shared.model().fsync_dir(ino.0);
        Self::empty(reply, answer);
    }

    fn statfs(&self, req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        self.saw(req);
        let backing = self.shared.model().backing().to_owned();
        // nats-server sizes JetStream's file store from the free space.
        match nix::sys::statvfs::statvfs(&backing) {
            Ok(s) => reply.statfs(
                s.blocks(),
                s.blocks_free(),
                s.blocks_available(),
                s.files(),
                s.files_free(),
                s.block_size() as u32,
                s.name_max() as u32,
                s.fragment_size() as u32,
            ),
            Err(e) => reply.error(Errno::from_i32(e as i32)),
        }
    }

    fn symlink(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _link_name: &OsStr,
        _target: &std::path::Path,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EPERM);
    }

    fn link(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        // One name per inode keeps the disk's namespace a replay of the log.
        reply.error(Errno::EPERM);
    }
}
