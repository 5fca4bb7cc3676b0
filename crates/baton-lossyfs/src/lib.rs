//! Tests only: a FUSE filesystem that loses, when the power goes out,
//! everything no fsync covered, so a test can show what a power cut does to
//! a process that was told its data was safe.
//!
//! A `kill -9` cannot show this: the kernel's page cache outlives a killed
//! process, and whatever it wrote is still read back after a restart. Here
//! the page cache is this crate's own memory. [`LossyFs::mount`] serves a
//! backing directory (the disk) through FUSE; writes, creates, renames and
//! removals stay in memory until an fsync (of the file, or of the directory,
//! see [`Durability`]) puts them on the disk. [`LossyFs::cut_power`] kills
//! the processes on the filesystem with SIGKILL, throws the memory away
//! (optionally tearing the last unsynced write at a random byte, seeded) and
//! from then on serves the disk as it was left.
//!
//! It must never be a dependency of a shipped binary: it exists for Baton's
//! power-loss tests (`tests/tests/power_loss.rs`) and its own. It needs
//! `/dev/fuse` and the right to mount: root, or `fusermount3` (Debian's
//! `fuse3`, which `deploy/test.sh` installs); when it cannot mount it says
//! so in its error, and tests must fail on it, never skip.

mod fuse;
mod model;
mod users;

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

pub use model::{Durability, Outage, Torn};

use fuse::{LossyFuse, Shared};
use model::{Model, Setup};

/// FUSE worker threads: three nats-servers and a projector fsync at once.
const THREADS: usize = 4;

/// What went wrong with the lossy filesystem.
#[derive(Debug, thiserror::Error)]
pub enum LossyError {
    #[error(
        "cannot mount the lossy FUSE filesystem at {mountpoint}: {source}. The power-loss \
         tests need /dev/fuse and the right to mount: run as root, or install fusermount3 \
         (Debian: apt-get install fuse3; deploy/test.sh does)"
    )]
    Mount {
        mountpoint: PathBuf,
        source: std::io::Error,
    },
    #[error("backing directory {path}: {source}")]
    Backing {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("sync failed with errno {0}")]
    Sync(i32),
    #[error("pid {pid} is not a process a power cut may kill")]
    NotAVictim { pid: u32 },
    #[error("cannot SIGKILL pid {pid}: {errno}")]
    Kill { pid: u32, errno: nix::errno::Errno },
    #[error("pid {pid} ({command}) still runs after SIGKILL")]
    Undead { pid: u32, command: String },
    #[error(
        "processes used the filesystem and would outlive its power cut (name them as \
         victims): {0:?}"
    )]
    Survivors(Vec<(u32, String)>),
    #[error("unmounting {mountpoint}: {source}")]
    Unmount {
        mountpoint: PathBuf,
        source: std::io::Error,
    },
}

/// How a [`LossyFs`] behaves.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub durability: Durability,
    /// At a power cut, write a random prefix (0 to all of its bytes) of the
    /// last unsynced write to the disk, as a disk that lost power mid-write.
    pub tear: bool,
    /// Seed of the tear: the same seed, the same cuts in the same writes,
    /// the same tears.
    pub seed: u64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            durability: Durability::Journaled,
            tear: true,
            seed: 0x5eed,
        }
    }
}

/// A mounted lossy filesystem. Dropping it unmounts it (lazily, if a
/// process still holds a file open).
#[derive(Debug)]
pub struct LossyFs {
    shared: Arc<Shared>,
    session: Option<fuser::BackgroundSession>,
    mountpoint: PathBuf,
    backing: PathBuf,
}

impl LossyFs {
    /// Serves `backing` at `mountpoint` (both directories; created if
    /// missing). What `backing` holds now is what the disk holds.
    pub fn mount(
        backing: &Path,
        mountpoint: &Path,
        options: Options,
    ) -> Result<LossyFs, LossyError> {
        for dir in [backing, mountpoint] {
            std::fs::create_dir_all(dir).map_err(|source| LossyError::Backing {
                path: dir.to_owned(),
                source,
            })?;
        }
        let setup = Setup {
            durability: options.durability,
            tear: options.tear,
            seed: options.seed,
        };
        let model = Model::open(backing, setup).map_err(|source| LossyError::Backing {
            path: backing.to_owned(),
            source,
        })?;
        let shared = Arc::new(Shared {
            model: Mutex::new(model),
            users: Mutex::default(),
        });
        let mut config = fuser::Config::default();
        config.mount_options = vec![
            fuser::MountOption::FSName("baton-lossyfs".into()),
            fuser::MountOption::Subtype("lossyfs".into()),
            fuser::MountOption::NoAtime,
        ];
        config.n_threads = Some(THREADS);
        config.clone_fd = true;
        let fs = LossyFuse {
            shared: shared.clone(),
        };
        let session =
            fuser::spawn_mount(fs, mountpoint, &config).map_err(|source| LossyError::Mount {
                mountpoint: mountpoint.to_owned(),
                source,
            })?;
        Ok(LossyFs {
            shared,
            session: Some(session),
            mountpoint: mountpoint.to_owned(),
            backing: backing.to_owned(),
        })
    }

    /// Where processes see the filesystem.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// The disk: what survives a power cut.
    pub fn backing(&self) -> &Path {
        &self.backing
    }

    /// sync(2): puts everything written so far on the disk, as the kernel's
    /// writeback eventually would (within about 30 s on Linux's defaults).
    pub fn sync_all(&self) -> Result<(), LossyError> {
        self.shared
            .model()
            .sync_all()
            .map_err(|e| LossyError::Sync(e.0))
    }

    /// What a power cut now would throw away (changes nothing).
    pub fn unsynced(&self) -> Outage {
        self.shared.model().unsynced()
    }

    /// Cuts the power: see [`cut_power`].
    pub fn cut_power(&self, victims: &[u32]) -> Result<Outage, LossyError> {
        let mut outages = cut_power(&[self], victims)?;
        Ok(outages.pop().unwrap_or_default())
    }

    /// Unmounts, failing if a process still holds a file open.
    pub fn unmount(mut self) -> Result<(), LossyError> {
        let unmount_error = |source| LossyError::Unmount {
            mountpoint: self.mountpoint.clone(),
            source,
        };
        match self.session.take() {
            Some(session) => session.umount_and_join().map_err(unmount_error),
            None => Ok(()),
        }
    }
}

impl Drop for LossyFs {
    fn drop(&mut self) {
        if self.session.is_some() {
            // Lazily: a process the test forgot would otherwise keep the
            // mount busy, and the test would hang here instead of failing.
            let _ = nix::mount::umount2(&self.mountpoint, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// The power goes out on several machines at the same instant: every
/// process in `victims` is SIGKILLed (all of them first, then each waited
/// for), then each filesystem throws away what no fsync covered and serves
/// its disk from then on. Fails, before anything is thrown away, if a
/// process not among `victims` (nor this one) used a filesystem and is
/// still running.
pub fn cut_power(filesystems: &[&LossyFs], victims: &[u32]) -> Result<Vec<Outage>, LossyError> {
    users::kill_all(victims)?;
    let mut survivors = Vec::new();
    for fs in filesystems {
        survivors.extend(fs.shared.users().survivors(victims));
    }
    if !survivors.is_empty() {
        survivors.sort();
        survivors.dedup();
        return Err(LossyError::Survivors(survivors));
    }
    let mut outages = Vec::with_capacity(filesystems.len());
    for fs in filesystems {
        let outage = fs
            .shared
            .model()
            .power_loss()
            .map_err(|source| LossyError::Backing {
                path: fs.backing.clone(),
                source,
            })?;
        fs.shared.users().clear();
        outages.push(outage);
    }
    Ok(outages)
}
