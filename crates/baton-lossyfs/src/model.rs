//! The disk and the page cache, without FUSE.
//!
//! The *backing directory* is the disk: what it holds survives an outage.
//! Everything a process did that no fsync has covered yet lives here in
//! memory, over it:
//!
//! - each file's unsynced data, as whole 4 KiB pages holding the file's
//!   current contents of that page ([`FileData::dirty`]), and how much of
//!   the file on disk still shows through after a truncation
//!   ([`FileData::base_len`]);
//! - namespace changes (create, mkdir, unlink, rmdir, rename), as an ordered
//!   log ([`Op`]) replayed onto the backing directory when a sync commits it.
//!
//! What commits a namespace change depends on [`Durability`]. A new file's
//! contents live in a staging directory inside the backing directory until
//! its creation is committed, so that a file fsynced before its directory
//! was keeps its data once the directory is synced, and vanishes if it never
//! is.
//!
//! [`Model::power_loss`] throws all of it away (optionally writing a random
//! prefix of the last unsynced write to the disk first) and reads the backing
//! directory afresh, with new inode numbers: what the processes restarted on
//! the filesystem then see is exactly what the disk held.

use std::{
    collections::{BTreeMap, HashMap},
    ffi::{OsStr, OsString},
    fs::File,
    io,
    os::unix::fs::{FileExt, MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    time::SystemTime,
};

/// Inode number. The root is 1.
pub type Ino = u64;

/// The root directory's inode number.
pub const ROOT: Ino = 1;

/// Unsynced data is kept in pages of this size.
pub const PAGE: u64 = 4096;

/// The staging directory's name in the backing directory: files whose
/// creation is not committed yet. Hidden from the mount, and not a name a
/// process may create at its root.
pub const STAGING: &str = ".lossyfs-staging";

/// When a namespace change (create, mkdir, unlink, rmdir, rename) reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// As a journaling filesystem (ext4, XFS) behaves in practice: namespace
    /// changes are journaled in order, and any fsync, of a file or a
    /// directory, commits every change made before it. A file's data still
    /// needs an fsync of that file.
    #[default]
    Journaled,
    /// Stricter than a journaling filesystem: a change reaches the disk
    /// only with an fsync of a directory, the one it changed or one changed
    /// after it (the log is committed in order, up to that directory's last
    /// change). An fsync of a new file keeps its data but not its name.
    /// Still ordered: POSIX would let a directory's changes land without
    /// those logged before them.
    Strict,
}

/// Kind of node served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
}

/// Attributes the filesystem serves for a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    pub ino: Ino,
    pub kind: Kind,
    pub size: u64,
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub atime: SystemTime,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
}

/// An error answered to the process, as an errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

impl From<io::Error> for Errno {
    fn from(e: io::Error) -> Errno {
        Errno(e.raw_os_error().unwrap_or(libc::EIO))
    }
}

pub type Answer<T> = Result<T, Errno>;

/// What a power loss threw away.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outage {
    /// Files with data no fsync had covered, by their path at the outage,
    /// and how many bytes of theirs were not on the disk (whole pages).
    pub unsynced_files: Vec<(PathBuf, u64)>,
    /// Namespace changes not committed (creates, renames, removals undone).
    pub undone_changes: usize,
    /// The last unsynced write, torn: part of it reached the disk.
    pub torn: Option<Torn>,
}

impl Outage {
    /// Bytes of file data lost, in whole pages.
    pub fn unsynced_bytes(&self) -> u64 {
        self.unsynced_files.iter().map(|(_, bytes)| bytes).sum()
    }
}

/// The last write before an outage, of which only a prefix reached the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Torn {
    pub path: PathBuf,
    pub offset: u64,
    /// Bytes of it on the disk after the outage (0 to `len`).
    pub kept: usize,
    pub len: usize,
}

/// A namespace change not yet on the disk.
#[derive(Debug, Clone)]
enum Op {
    /// Create or mkdir: `ino` appears as `name` in `parent`.
    Link {
        ino: Ino,
        kind: Kind,
        parent: Ino,
        name: OsString,
    },
    /// Unlink or rmdir.
    Unlink {
        ino: Ino,
        kind: Kind,
        parent: Ino,
        name: OsString,
    },
    /// Rename, over `replaced` if the target existed.
    Rename {
        ino: Ino,
        from: (Ino, OsString),
        to: (Ino, OsString),
        replaced: Option<Ino>,
    },
}

impl Op {
    /// Every inode the change names (kept in memory until it is committed).
    fn inodes(&self) -> Vec<Ino> {
        match self {
            Op::Link { ino, parent, .. } | Op::Unlink { ino, parent, .. } => vec![*ino, *parent],
            Op::Rename {
                ino,
                from,
                to,
                replaced,
            } => {
                let mut v = vec![*ino, from.0, to.0];
                v.extend(replaced);
                v
            }
        }
    }

    /// Whether it changes directory `dir`.
    fn changes(&self, dir: Ino) -> bool {
        match self {
            Op::Link { parent, .. } | Op::Unlink { parent, .. } => *parent == dir,
            Op::Rename { from, to, .. } => from.0 == dir || to.0 == dir,
        }
    }
}

/// A regular file's contents: its inode on the disk and its unsynced pages.
#[derive(Debug)]
struct FileData {
    /// The file's inode in the backing directory (or the staging directory),
    /// held open so renames on the disk never lose it.
    disk: File,
    /// Length of `disk`.
    disk_len: u64,
    /// Bytes of `disk` that still show through: a truncation since the
    /// last sync hides what lay beyond it.
    base_len: u64,
    /// Page index → the page's current contents, for every page written
    /// since the last sync (bytes past the file's size are zero).
    dirty: BTreeMap<u64, Box<[u8]>>,
}

#[derive(Debug)]
struct Node {
    kind: Kind,
    /// Parent and name in the namespace processes see; `None` once removed.
    live: Option<(Ino, OsString)>,
    /// Parent and name on the disk; `None` while its creation is not
    /// committed, or once its removal is.
    disk: Option<(Ino, OsString)>,
    /// Live entries of a directory.
    children: BTreeMap<OsString, Ino>,
    size: u64,
    perm: u16,
    uid: u32,
    gid: u32,
    atime: SystemTime,
    mtime: SystemTime,
    ctime: SystemTime,
    data: Option<FileData>,
    /// Open file handles.
    opens: u64,
    /// The kernel's references (lookups not yet forgotten).
    lookups: u64,
    /// Uncommitted changes that name it.
    pending: u64,
}

/// The last write, for tearing it at an outage.
#[derive(Debug)]
struct LastWrite {
    ino: Ino,
    offset: u64,
    data: Vec<u8>,
}

/// How a model is set up.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    pub durability: Durability,
    /// Tear the last unsynced write at a random byte when the power goes.
    pub tear: bool,
    /// Seed of the tearing's randomness (an outage's tear is repeatable).
    pub seed: u64,
}

/// The filesystem's state: the disk (backing directory) and what is over it.
#[derive(Debug)]
pub struct Model {
    backing: PathBuf,
    staging: PathBuf,
    setup: Setup,
    nodes: HashMap<Ino, Node>,
    next_ino: Ino,
    log: std::collections::VecDeque<Op>,
    last_write: Option<LastWrite>,
    rng: u64,
}

fn now() -> SystemTime {
    SystemTime::now()
}

fn enoent<T>() -> Answer<T> {
    Err(Errno(libc::ENOENT))
}

impl Model {
    /// Serves `backing` as it is on the disk now.
    pub fn open(backing: &Path, setup: Setup) -> io::Result<Model> {
        let staging = backing.join(STAGING);
        let mut model = Model {
            backing: backing.to_owned(),
            staging,
            setup,
            nodes: HashMap::new(),
            next_ino: ROOT + 1,
            log: Default::default(),
            last_write: None,
            rng: setup.seed ^ 0x9e37_79b9_7f4a_7c15,
        };
        model.read_disk()?;
        Ok(model)
    }

    /// Forgets everything and serves the backing directory as it is: a
    /// fresh inode for every node but the root, an empty staging directory.
    fn read_disk(&mut self) -> io::Result<()> {
        self.nodes.clear();
        self.log.clear();
        self.last_write = None;
        if self.staging.exists() {
            std::fs::remove_dir_all(&self.staging)?;
        }
        std::fs::create_dir(&self.staging)?;
        let meta = std::fs::metadata(&self.backing)?;
        let mut root = Node::from_meta(Kind::Dir, &meta, None);
        root.disk = None;
        self.nodes.insert(ROOT, root);
        let mut stack = vec![(ROOT, self.backing.clone())];
        while let Some((dir, path)) = stack.pop() {
            for entry in std::fs::read_dir(&path)? {
                let entry = entry?;
                let name = entry.file_name();
                if dir == ROOT && name == STAGING {
                    continue;
                }
                let meta = std::fs::symlink_metadata(entry.path())?;
                let ino = self.next_ino;
                self.next_ino += 1;
                let node = if meta.is_dir() {
                    stack.push((ino, entry.path()));
                    Node::from_meta(Kind::Dir, &meta, None)
                } else if meta.is_file() {
                    let disk = File::options().read(true).write(true).open(entry.path())?;
                    Node::from_meta(Kind::File, &meta, Some(disk))
                } else {
                    // Symlinks, sockets, devices: never written through us.
                    continue;
                };
                let mut node = node;
                node.live = Some((dir, name.clone()));
                node.disk = Some((dir, name.clone()));
                self.nodes.insert(ino, node);
                if let Some(parent) = self.nodes.get_mut(&dir) {
                    parent.children.insert(name, ino);
                }
            }
        }
        Ok(())
    }

    fn node(&self, ino: Ino) -> Answer<&Node> {
        self.nodes.get(&ino).map_or_else(enoent, Ok)
    }

    fn node_mut(&mut self, ino: Ino) -> Answer<&mut Node> {
        self.nodes.get_mut(&ino).map_or_else(enoent, Ok)
    }

    fn dir(&self, ino: Ino) -> Answer<&Node> {
        let node = self.node(ino)?;
        if node.kind != Kind::Dir {
            return Err(Errno(libc::ENOTDIR));
        }
        Ok(node)
    }

    pub fn attr(&self, ino: Ino) -> Answer<Attr> {
        Ok(self.node(ino)?.attr(ino))
    }

    /// Looks `name` up in `parent`, counting a kernel reference.
    pub fn lookup(&mut self, parent: Ino, name: &OsStr) -> Answer<Attr> {
        let ino = match self.dir(parent)?.children.get(name) {
            Some(ino) => *ino,
            None => return enoent(),
        };
        let node = self.node_mut(ino)?;
        node.lookups += 1;
        Ok(node.attr(ino))
    }

    /// The kernel dropped `n` references to `ino`.
    pub fn forget(&mut self, ino: Ino, n: u64) {
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.lookups = node.lookups.saturating_sub(n);
        }
        self.collect(ino);
    }

    /// Drops a removed node nobody refers to any more.
    fn collect(&mut self, ino: Ino) {
        let unused = self.nodes.get(&ino).is_some_and(|n| {
            ino != ROOT && n.live.is_none() && n.opens == 0 && n.lookups == 0 && n.pending == 0
        });
        if unused {
            self.nodes.remove(&ino);
        }
    }

    pub fn open_file(&mut self, ino: Ino) -> Answer<()> {
        self.node_mut(ino)?.opens += 1;
        Ok(())
    }

    pub fn release(&mut self, ino: Ino) {
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.opens = node.opens.saturating_sub(1);
        }
        self.collect(ino);
    }

    /// Entries of a directory, `.` and `..` first.
    pub fn entries(&self, ino: Ino) -> Answer<Vec<(Ino, Kind, OsString)>> {
        let dir = self.dir(ino)?;
        let parent = dir.live.as_ref().map_or(ROOT, |(p, _)| *p);
        let mut out = vec![
            (ino, Kind::Dir, OsString::from(".")),
            (parent, Kind::Dir, OsString::from("..")),
        ];
        for (name, child) in &dir.children {
            let kind = self.node(*child)?.kind;
            out.push((*child, kind, name.clone()));
        }
        Ok(out)
    }

    fn check_new_name(&self, parent: Ino, name: &OsStr) -> Answer<()> {
        if parent == ROOT && name == STAGING {
            return Err(Errno(libc::EACCES));
        }
        if name.len() > 255 {
            return Err(Errno(libc::ENAMETOOLONG));
        }
        if self.dir(parent)?.children.contains_key(name) {
            return Err(Errno(libc::EEXIST));
        }
        Ok(())
    }

    /// Creates a file or directory, counting a kernel reference.
    pub fn create(
        &mut self,
        parent: Ino,
        name: &OsStr,
        kind: Kind,
        perm: u16,
        uid: u32,
        gid: u32,
    ) -> Answer<Attr> {
        self.check_new_name(parent, name)?;
        let ino = self.next_ino;
        let data = match kind {
            Kind::File => {
                let disk = File::options()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(self.staging.join(ino.to_string()))?;
                Some(FileData {
                    disk,
                    disk_len: 0,
                    base_len: 0,
                    dirty: BTreeMap::new(),
                })
            }
            Kind::Dir => None,
        };
        self.next_ino += 1;
        let t = now();
        let node = Node {
            kind,
            live: Some((parent, name.to_owned())),
            disk: None,
            children: BTreeMap::new(),
            size: 0,
            perm,
            uid,
            gid,
            atime: t,
            mtime: t,
            ctime: t,
            data,
            opens: 0,
            lookups: 1,
            pending: 0,
        };
        let attr = node.attr(ino);
        self.nodes.insert(ino, node);
        let dir = self.node_mut(parent)?;
        dir.children.insert(name.to_owned(), ino);
        dir.mtime = t;
        dir.ctime = t;
        self.push(Op::Link {
            ino,
            kind,
            parent,
            name: name.to_owned(),
        });
        Ok(attr)
    }

    /// Unlink (`kind` File) or rmdir (`kind` Dir).
    pub fn remove(&mut self, parent: Ino, name: &OsStr, kind: Kind) -> Answer<()> {
        let ino = match self.dir(parent)?.children.get(name) {
            Some(ino) => *ino,
            None => return enoent(),
        };
        let node = self.node(ino)?;
        match (kind, node.kind) {
            (Kind::File, Kind::Dir) => return Err(Errno(libc::EISDIR)),
            (Kind::Dir, Kind::File) => return Err(Errno(libc::ENOTDIR)),
            (Kind::Dir, Kind::Dir) if !node.children.is_empty() => {
                return Err(Errno(libc::ENOTEMPTY))
            }
            _ => {}
        }
        let t = now();
        let dir = self.node_mut(parent)?;
        dir.children.remove(name);
        dir.mtime = t;
        dir.ctime = t;
        let node = self.node_mut(ino)?;
        node.live = None;
        node.ctime = t;
        self.push(Op::Unlink {
            ino,
            kind,
            parent,
            name: name.to_owned(),
        });
        self.collect(ino);
        Ok(())
    }

    /// Renames (replacing the target unless `noreplace`).
    pub fn rename(
        &mut self,
        parent: Ino,
        name: &OsStr,
        newparent: Ino,
        newname: &OsStr,
        noreplace: bool,
    ) -> Answer<()> {
        let ino = match self.dir(parent)?.children.get(name) {
            Some(ino) => *ino,
            None => return enoent(),
        };
        if newparent == ROOT && newname == STAGING {
            return Err(Errno(libc::EACCES));
        }
        let kind = self.node(ino)?.kind;
        let replaced = self.dir(newparent)?.children.get(newname).copied();
        if replaced == Some(ino) {
            return Ok(());
        }
        if let Some(target) = replaced {
            if noreplace {
                return Err(Errno(libc::EEXIST));
            }
            let target = self.node(target)?;
            match (kind, target.kind) {
                (Kind::File, Kind::Dir) => return Err(Errno(libc::EISDIR)),
                (Kind::Dir, Kind::File) => return Err(Errno(libc::ENOTDIR)),
                (Kind::Dir, Kind::Dir) if !target.children.is_empty() => {
                    return Err(Errno(libc::ENOTEMPTY))
                }
                _ => {}
            }
        }
        if kind == Kind::Dir {
            // Not into itself or below it.
            let mut at = newparent;
            loop {
                if at == ino {
                    return Err(Errno(libc::EINVAL));
                }
                match &self.node(at)?.live {
                    Some((up, _)) => at = *up,
                    None => break,
                }
            }
        }
        let t = now();
        if let Some(target) = replaced {
            let target = self.node_mut(target)?;
            target.live = None;
            target.ctime = t;
        }
        let dir = self.node_mut(parent)?;
        dir.children.remove(name);
        dir.mtime = t;
        dir.ctime = t;
        let dir = self.node_mut(newparent)?;
        dir.children.insert(newname.to_owned(), ino);
        dir.mtime = t;
        dir.ctime = t;
        let node = self.node_mut(ino)?;
        node.live = Some((newparent, newname.to_owned()));
        node.ctime = t;
        self.push(Op::Rename {
            ino,
            from: (parent, name.to_owned()),
            to: (newparent, newname.to_owned()),
            replaced,
        });
        if let Some(target) = replaced {
            self.collect(target);
        }
        Ok(())
    }

    fn push(&mut self, op: Op) {
        for ino in op.inodes() {
            if let Some(node) = self.nodes.get_mut(&ino) {
                node.pending += 1;
            }
        }
        self.log.push_back(op);
    }

    /// Changes attributes; `size` truncates or extends (unsynced, like data).
    #[allow(clippy::too_many_arguments)]
    pub fn set_attr(
        &mut self,
        ino: Ino,
        perm: Option<u16>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<SystemTime>,
        mtime: Option<SystemTime>,
    ) -> Answer<Attr> {
        if let Some(size) = size {
            self.truncate(ino, size)?;
        }
        let node = self.node_mut(ino)?;
        if let Some(perm) = perm {
            node.perm = perm;
        }
        if let Some(uid) = uid {
            node.uid = uid;
        }
        if let Some(gid) = gid {
            node.gid = gid;
        }
        if let Some(atime) = atime {
            node.atime = atime;
        }
        if let Some(mtime) = mtime {
            node.mtime = mtime;
        }
        node.ctime = now();
        Ok(node.attr(ino))
    }

    fn truncate(&mut self, ino: Ino, size: u64) -> Answer<()> {
        let node = self.node_mut(ino)?;
        let Some(data) = node.data.as_mut() else {
            return Err(Errno(libc::EISDIR));
        };
        if size < node.size {
            let first_gone = size.div_ceil(PAGE);
            data.dirty.retain(|page, _| *page < first_gone);
            if let Some(page) = data.dirty.get_mut(&(size / PAGE)) {
                let from = (size % PAGE) as usize;
                if from > 0 {
                    page[from..].fill(0);
                }
            }
            data.base_len = data.base_len.min(size);
        }
        node.size = size;
        let t = now();
        node.mtime = t;
        node.ctime = t;
        if self.last_write.as_ref().is_some_and(|w| w.ino == ino) {
            self.last_write = None;
        }
        Ok(())
    }

    /// The file's current contents from `offset`, at most `len` bytes.
    pub fn read(&self, ino: Ino, offset: u64, len: u32) -> Answer<Vec<u8>> {
        let node = self.node(ino)?;
        let Some(data) = node.data.as_ref() else {
            return Err(Errno(libc::EISDIR));
        };
        if offset >= node.size {
            return Ok(Vec::new());
        }
        let end = node.size.min(offset.saturating_add(u64::from(len)));
        let mut out = vec![0u8; (end - offset) as usize];
        let base_end = end.min(data.base_len);
        if offset < base_end {
            data.disk
                .read_exact_at(&mut out[..(base_end - offset) as usize], offset)?;
        }
        for (page, bytes) in data.dirty.range(offset / PAGE..=(end - 1) / PAGE) {
            let page_start = page * PAGE;
            let from = offset.max(page_start);
            let to = end.min(page_start + PAGE);
            out[(from - offset) as usize..(to - offset) as usize]
                .copy_from_slice(&bytes[(from - page_start) as usize..(to - page_start) as usize]);
        }
        Ok(out)
    }

    /// Writes into the page cache: nothing reaches the disk before an fsync.
    pub fn write(&mut self, ino: Ino, offset: u64, bytes: &[u8]) -> Answer<u32> {
        let node = self.node_mut(ino)?;
        let Some(data) = node.data.as_mut() else {
            return Err(Errno(libc::EISDIR));
        };
        if bytes.is_empty() {
            return Ok(0);
        }
        let end = offset
            .checked_add(bytes.len() as u64)
            .ok_or(Errno(libc::EFBIG))?;
        for page in offset / PAGE..=(end - 1) / PAGE {
            let page_start = page * PAGE;
            let buffer = match data.dirty.entry(page) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    // The page's current contents: what shows through from the disk, zeros past it.
                    let mut fresh = vec![0u8; PAGE as usize].into_boxed_slice();
                    let shown = data.base_len.min(page_start + PAGE);
                    if shown > page_start {
                        data.disk.read_exact_at(
                            &mut fresh[..(shown - page_start) as usize],
                            page_start,
                        )?;
                    }
                    e.insert(fresh)
                }
            };
            let from = offset.max(page_start);
            let to = end.min(page_start + PAGE);
            buffer[(from - page_start) as usize..(to - page_start) as usize]
                .copy_from_slice(&bytes[(from - offset) as usize..(to - offset) as usize]);
        }
        node.size = node.size.max(end);
        let t = now();
        node.mtime = t;
        node.ctime = t;
        self.last_write = Some(LastWrite {
            ino,
            offset,
            data: bytes.to_vec(),
        });
        Ok(bytes.len() as u32)
    }

    /// fsync or fdatasync of a file: its data reaches the disk; with
    /// [`Durability::Journaled`] every namespace change made so far too.
    pub fn fsync(&mut self, ino: Ino) -> Answer<()> {
        self.flush_data(ino)?;
        if self.setup.durability == Durability::Journaled {
            self.commit(self.log.len())?;
        }
        Ok(())
    }

    /// fsync of a directory: commits the namespace changes logged up to the
    /// directory's last one (every change so far when journaled).
    pub fn fsync_dir(&mut self, ino: Ino) -> Answer<()> {
        self.dir(ino)?;
        let upto = match self.setup.durability {
            Durability::Journaled => self.log.len(),
            Durability::Strict => self
                .log
                .iter()
                .rposition(|op| op.changes(ino))
                .map_or(0, |i| i + 1),
        };
        self.commit(upto)
    }

    /// sync(2): every file's data and every namespace change reach the disk.
    pub fn sync_all(&mut self) -> Answer<()> {
        let files: Vec<Ino> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.unsynced())
            .map(|(ino, _)| *ino)
            .collect();
        for ino in files {
            self.flush_data(ino)?;
        }
        self.commit(self.log.len())
    }

    fn flush_data(&mut self, ino: Ino) -> Answer<()> {
        let node = self.node_mut(ino)?;
        let size = node.size;
        let Some(data) = node.data.as_mut() else {
            return Ok(());
        };
        if data.base_len < data.disk_len {
            // Whatever a truncation cut off must not come back as the file grows again.
            data.disk.set_len(data.base_len)?;
            data.disk_len = data.base_len;
        }
        let mut len = data.disk_len;
        for (page, bytes) in &data.dirty {
            let start = page * PAGE;
            if start >= size {
                continue;
            }
            let n = (size - start).min(PAGE);
            data.disk.write_all_at(&bytes[..n as usize], start)?;
            len = len.max(start + n);
        }
        if len != size {
            // Grown by a truncation past its end, or by a write whose page
            // ends short of the size: zeros to the size, as read.
            data.disk.set_len(size)?;
        }
        data.disk_len = size;
        data.base_len = size;
        data.dirty.clear();
        if self.last_write.as_ref().is_some_and(|w| w.ino == ino) {
            self.last_write = None;
        }
        Ok(())
    }

    /// Where a node is on the disk.
    fn disk_path(&self, ino: Ino) -> Answer<PathBuf> {
        let mut names = Vec::new();
        let mut at = ino;
        while at != ROOT {
            match &self.node(at)?.disk {
                Some((parent, name)) => {
                    names.push(name.clone());
                    at = *parent;
                }
                None => return Err(Errno(libc::EIO)),
            }
        }
        let mut path = self.backing.clone();
        path.extend(names.iter().rev());
        Ok(path)
    }

    /// Where a node is in the namespace processes see (for reports).
    fn live_path(&self, ino: Ino) -> PathBuf {
        let mut names = Vec::new();
        let mut at = ino;
        while at != ROOT {
            match self.nodes.get(&at).and_then(|n| n.live.as_ref()) {
                Some((parent, name)) => {
                    names.push(name.clone());
                    at = *parent;
                }
                None => {
                    names.push(OsString::from(format!("(removed inode {at})")));
                    break;
                }
            }
        }
        names.iter().rev().collect()
    }

    /// Replays the first `upto` logged changes onto the disk, in order.
    fn commit(&mut self, upto: usize) -> Answer<()> {
        for _ in 0..upto {
            let Some(op) = self.log.front().cloned() else {
                break;
            };
            self.apply(&op)?;
            self.log.pop_front();
            for ino in op.inodes() {
                if let Some(node) = self.nodes.get_mut(&ino) {
                    node.pending = node.pending.saturating_sub(1);
                }
                self.collect(ino);
            }
        }
        Ok(())
    }

    fn apply(&mut self, op: &Op) -> Answer<()> {
        match op {
            Op::Link {
                ino,
                kind,
                parent,
                name,
            } => {
                let path = self.disk_path(*parent)?.join(name);
                match kind {
                    Kind::File => std::fs::rename(self.staging.join(ino.to_string()), &path)?,
                    Kind::Dir => std::fs::create_dir(&path)?,
                }
                self.node_mut(*ino)?.disk = Some((*parent, name.clone()));
            }
            Op::Unlink {
                ino,
                kind,
                parent,
                name,
            } => {
                let path = self.disk_path(*parent)?.join(name);
                match kind {
                    // The node keeps its open handle: a process holding the
                    // file open still reads it, as on any disk.
                    Kind::File => std::fs::remove_file(&path)?,
                    Kind::Dir => std::fs::remove_dir(&path)?,
                }
                self.node_mut(*ino)?.disk = None;
            }
            Op::Rename {
                ino,
                from,
                to,
                replaced,
            } => {
                let source = self.disk_path(from.0)?.join(&from.1);
                let target = self.disk_path(to.0)?.join(&to.1);
                std::fs::rename(&source, &target)?;
                if let Some(replaced) = replaced {
                    self.node_mut(*replaced)?.disk = None;
                }
                self.node_mut(*ino)?.disk = Some(to.clone());
            }
        }
        Ok(())
    }

    /// What an outage now would throw away (nothing is changed).
    pub fn unsynced(&self) -> Outage {
        let mut unsynced_files: Vec<(PathBuf, u64)> = self
            .nodes
            .iter()
            .filter_map(|(ino, node)| {
                let data = node.data.as_ref()?;
                node.unsynced().then(|| {
                    let bytes = data.dirty.len() as u64 * PAGE
                        + data.disk_len.saturating_sub(data.base_len)
                        + node.size.saturating_sub(data.disk_len);
                    (self.live_path(*ino), bytes)
                })
            })
            .collect();
        unsynced_files.sort();
        Outage {
            unsynced_files,
            undone_changes: self.log.len(),
            torn: None,
        }
    }

    /// The power goes out: the disk keeps what it has (and, when tearing,
    /// a random prefix of the last unsynced write); the rest is gone.
    pub fn power_loss(&mut self) -> io::Result<Outage> {
        let mut outage = self.unsynced();
        if self.setup.tear {
            if let Some(last) = self.last_write.take() {
                outage.torn = self.tear(&last)?;
            }
        }
        self.read_disk()?;
        Ok(outage)
    }

    fn tear(&mut self, last: &LastWrite) -> io::Result<Option<Torn>> {
        let path = self.live_path(last.ino);
        let Some(data) = self.nodes.get(&last.ino).and_then(|n| n.data.as_ref()) else {
            return Ok(None);
        };
        // splitmix64: the same seed draws the same tear points again.
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let kept = (z % (last.data.len() as u64 + 1)) as usize;
        if kept > 0 {
            data.disk.write_all_at(&last.data[..kept], last.offset)?;
        }
        Ok(Some(Torn {
            path,
            offset: last.offset,
            kept,
            len: last.data.len(),
        }))
    }

    /// The backing directory's filesystem figures, for statfs.
    pub fn backing(&self) -> &Path {
        &self.backing
    }
}

impl Node {
    fn from_meta(kind: Kind, meta: &std::fs::Metadata, disk: Option<File>) -> Node {
        let size = if kind == Kind::File { meta.len() } else { 0 };
        Node {
            kind,
            live: None,
            disk: None,
            children: BTreeMap::new(),
            size,
            perm: (meta.permissions().mode() & 0o7777) as u16,
            uid: meta.uid(),
            gid: meta.gid(),
            atime: meta.accessed().unwrap_or_else(|_| now()),
            mtime: meta.modified().unwrap_or_else(|_| now()),
            ctime: now(),
            data: disk.map(|disk| FileData {
                disk,
                disk_len: size,
                base_len: size,
                dirty: BTreeMap::new(),
            }),
            opens: 0,
            lookups: 0,
            pending: 0,
        }
    }

    /// Whether its contents or size differ from the disk's.
    fn unsynced(&self) -> bool {
        self.data.as_ref().is_some_and(|d| {
            !d.dirty.is_empty() || d.base_len < d.disk_len || self.size != d.disk_len
        })
    }

    fn attr(&self, ino: Ino) -> Attr {
        Attr {
            ino,
            kind: self.kind,
            size: self.size,
            perm: self.perm,
            nlink: match (self.kind, self.live.is_some() || ino == ROOT) {
                (_, false) => 0,
                (Kind::File, true) => 1,
                (Kind::Dir, true) => 2,
            },
            uid: self.uid,
            gid: self.gid,
            atime: self.atime,
            mtime: self.mtime,
            ctime: self.ctime,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(durability: Durability) -> (tempfile::TempDir, Model) {
        let dir = tempfile::tempdir().expect("tempdir");
        let setup = Setup {
            durability,
            tear: false,
            seed: 1,
        };
        let model = Model::open(dir.path(), setup).expect("open the model");
        (dir, model)
    }

    fn file(m: &mut Model, parent: Ino, name: &str) -> Ino {
        m.create(parent, OsStr::new(name), Kind::File, 0o644, 0, 0)
            .expect("create")
            .ino
    }

    fn ino_of(m: &mut Model, parent: Ino, name: &str) -> Option<Ino> {
        m.lookup(parent, OsStr::new(name)).ok().map(|a| a.ino)
    }

    #[test]
    fn reads_see_writes_before_any_sync_across_pages() {
        let (_dir, mut m) = model(Durability::Journaled);
        let f = file(&mut m, ROOT, "f");
        let bytes: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        m.write(f, 100, &bytes).expect("write");
        let back = m.read(f, 0, 20_000).expect("read");
        assert_eq!(back.len(), 10_100);
        assert!(back[..100].iter().all(|b| *b == 0));
        assert_eq!(&back[100..], &bytes[..]);
    }

    #[test]
    fn truncation_then_growth_shows_zeros_not_the_old_bytes() {
        let (dir, mut m) = model(Durability::Journaled);
        let f = file(&mut m, ROOT, "f");
        m.write(f, 0, &[7u8; 9000]).expect("write");
        m.fsync(f).expect("fsync");
        m.set_attr(f, None, None, None, Some(10), None, None)
            .expect("truncate");
        m.write(f, 8000, &[1u8; 10]).expect("write past the cut");
        let back = m.read(f, 0, 9000).expect("read");
        assert_eq!(back.len(), 8010);
        assert!(back[..10].iter().all(|b| *b == 7));
        assert!(back[10..8000].iter().all(|b| *b == 0));
        m.fsync(f).expect("fsync");
        let disk = std::fs::read(dir.path().join("f")).expect("read the disk");
        assert_eq!(disk, back, "the disk holds what was read");
    }

    #[test]
    fn a_file_grown_by_truncation_is_grown_on_the_disk_by_fsync_and_by_sync() {
        for by_sync in [false, true] {
            let (dir, mut m) = model(Durability::Journaled);
            let f = file(&mut m, ROOT, "f");
            m.write(f, 0, b"abc").expect("write");
            m.set_attr(f, None, None, None, Some(10_000), None, None)
                .expect("grow");
            assert_eq!(m.unsynced().unsynced_files.len(), 1, "unsynced");
            if by_sync {
                m.sync_all().expect("sync");
            } else {
                m.fsync(f).expect("fsync");
            }
            assert_eq!(m.unsynced().unsynced_files.len(), 0, "synced");
            let disk = std::fs::read(dir.path().join("f")).expect("the disk");
            assert_eq!(disk.len(), 10_000);
            assert_eq!(&disk[..3], b"abc");
            m.power_loss().expect("outage");
            let f = ino_of(&mut m, ROOT, "f").expect("f");
            assert_eq!(m.read(f, 0, 20_000).expect("read"), disk);
        }
    }

    #[test]
    fn journaled_fsync_of_any_file_commits_every_namespace_change() {
        let (dir, mut m) = model(Durability::Journaled);
        let a = file(&mut m, ROOT, "a");
        let b = file(&mut m, ROOT, "b");
        m.write(a, 0, b"a").expect("write");
        m.fsync(b).expect("fsync b");
        assert!(dir.path().join("a").exists(), "a's creation is committed");
        assert_eq!(std::fs::read(dir.path().join("a")).expect("a").len(), 0);
        m.power_loss().expect("outage");
        let a = ino_of(&mut m, ROOT, "a").expect("a survives");
        assert_eq!(m.attr(a).expect("attr").size, 0, "its data did not");
    }

    #[test]
    fn strict_file_fsync_keeps_data_but_not_the_name() {
        let (_dir, mut m) = model(Durability::Strict);
        let a = file(&mut m, ROOT, "a");
        m.write(a, 0, b"data").expect("write");
        m.fsync(a).expect("fsync");
        let outage = m.power_loss().expect("outage");
        assert_eq!(outage.undone_changes, 1);
        assert_eq!(ino_of(&mut m, ROOT, "a"), None);
    }

    #[test]
    fn strict_directory_fsync_reveals_a_file_with_its_synced_data() {
        let (_dir, mut m) = model(Durability::Strict);
        let d = m
            .create(ROOT, OsStr::new("d"), Kind::Dir, 0o755, 0, 0)
            .expect("mkdir")
            .ino;
        let a = file(&mut m, d, "a");
        m.write(a, 0, b"synced").expect("write");
        m.fsync(a).expect("fsync");
        m.write(a, 6, b" and not").expect("write");
        m.fsync_dir(d).expect("fsync d commits mkdir d too");
        m.power_loss().expect("outage");
        let d = ino_of(&mut m, ROOT, "d").expect("d");
        let a = ino_of(&mut m, d, "a").expect("a");
        assert_eq!(m.read(a, 0, 100).expect("read"), b"synced");
    }

    #[test]
    fn a_removed_file_stays_readable_while_open_and_its_removal_can_be_undone() {
        let (_dir, mut m) = model(Durability::Journaled);
        let a = file(&mut m, ROOT, "a");
        m.write(a, 0, b"kept").expect("write");
        m.fsync(a).expect("fsync");
        m.open_file(a).expect("open");
        m.remove(ROOT, OsStr::new("a"), Kind::File).expect("unlink");
        assert_eq!(m.read(a, 0, 10).expect("read while open"), b"kept");
        m.power_loss().expect("outage");
        let a = ino_of(&mut m, ROOT, "a").expect("the unlink was undone");
        assert_eq!(m.read(a, 0, 10).expect("read"), b"kept");
    }

    #[test]
    fn a_torn_write_leaves_a_prefix_of_itself() {
        let dir = tempfile::tempdir().expect("tempdir");
        let setup = Setup {
            durability: Durability::Journaled,
            tear: true,
            seed: 42,
        };
        let mut m = Model::open(dir.path(), setup).expect("open");
        let a = file(&mut m, ROOT, "a");
        m.fsync(a).expect("commit a");
        m.write(a, 0, &[9u8; 1000]).expect("write");
        let outage = m.power_loss().expect("outage");
        let torn = outage.torn.expect("the last write was torn");
        assert_eq!(torn.len, 1000);
        let a = ino_of(&mut m, ROOT, "a").expect("a");
        let back = m.read(a, 0, 2000).expect("read");
        assert_eq!(back.len(), torn.kept);
        assert!(back.iter().all(|b| *b == 9));
    }
}
