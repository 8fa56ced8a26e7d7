//! Child processes that are killed when their owner drops them, and the
//! paths of the workspace's own binaries.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};

use crate::TestkitError;

/// A child process, SIGKILLed and reaped on drop.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Child,
}

impl Process {
    /// Spawns `command`; `name` is used in errors.
    pub fn spawn(name: impl Into<String>, mut command: Command) -> Result<Self, TestkitError> {
        let name = name.into();
        let child = command
            .spawn()
            .map_err(|e| TestkitError::io(format!("starting {name}"), e))?;
        Ok(Self { name, child })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its stdout, if it was piped and not taken yet.
    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// Its stderr, if it was piped and not taken yet.
    pub fn take_stderr(&mut self) -> Option<std::process::ChildStderr> {
        self.child.stderr.take()
    }

    /// The exit status if the process has ended.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends SIGKILL and reaps the process.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to end.
    pub fn wait(&mut self) -> Result<ExitStatus, TestkitError> {
        self.child
            .wait()
            .map_err(|e| TestkitError::io(format!("waiting for {}", self.name), e))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The path of the workspace binary `name` (e.g. `toolfan-worker`), built in
/// the same profile as the running test.
pub fn binary(name: &str) -> Result<PathBuf, TestkitError> {
    let exe =
        std::env::current_exe().map_err(|e| TestkitError::io("finding the test binary", e))?;
    // target/<profile>/deps/<test> or target/<profile>/<bin>
    let mut dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(TestkitError::NotBuilt(path.display().to_string()))
    }
}
