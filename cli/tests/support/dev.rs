//! `modelobs dev` as the LocalStack tests run it: in its own process group,
//! ready once it says so, stopped (with the `cargo lambda watch` it started)
//! when dropped, also when an assertion fails; and crashed on purpose, its
//! watch left running for a router started again with `--no-watch`.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Dev {
    child: Child,
    /// The process group of the `cargo lambda watch` it started (or adopted).
    watch_group: Option<i32>,
}

impl Dev {
    /// `modelobs dev ARGS` with `envs` (they reach the functions too); waits
    /// for "ready" (the first start builds the functions: up to 20 minutes).
    pub fn start(args: &[&str], envs: &[(&str, &str)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_modelobs"))
            .arg("dev")
            .args(args)
            .current_dir(super::repo_root())
            .envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("starting modelobs dev");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                println!("[dev] {line}");
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(1200);
        let mut watch_group = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains("modelobs dev: ready") => break,
                Ok(line) => {
                    if let Some(g) =
                        line.strip_prefix("modelobs dev: cargo lambda watch is process group ")
                    {
                        watch_group = g.trim().parse().ok();
                    }
                }
                Err(e) => panic!("modelobs dev did not get ready: {e}"),
            }
        }
        if !args.contains(&"--no-watch") {
            assert!(
                watch_group.is_some(),
                "modelobs dev names the watch's process group"
            );
        }
        Self { child, watch_group }
    }

    pub fn pgid(&self) -> i32 {
        self.child.id() as i32
    }

    /// What is still running of both groups.
    pub fn leftovers(&self) -> Vec<i32> {
        let mut left = group_members(self.pgid());
        if let Some(g) = self.watch_group {
            left.extend(group_members(g));
        }
        left
    }

    /// SIGTERM, as Ctrl-C would; true when both groups are gone.
    pub fn stop(&mut self) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        if let Some(g) = self.watch_group {
            // A router started with --no-watch does not own the watch it adopted.
            let _ = Command::new("kill")
                .args(["-TERM", "--", &format!("-{g}")])
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if self.leftovers().is_empty() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    }

    /// The router dies (SIGKILL to its group, whatever it was doing); the
    /// watch and the functions it serves keep running. Returns the watch's
    /// group for [`Dev::adopt_watch`].
    pub fn crash(&mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.pgid())])
            .status();
        let _ = self.child.wait();
        self.watch_group.take()
    }

    /// Stops `group` (a crashed router's watch) with this one.
    pub fn adopt_watch(&mut self, group: Option<i32>) {
        self.watch_group = group;
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        for group in std::iter::once(self.pgid()).chain(self.watch_group) {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{group}")])
                .status();
        }
        let _ = self.child.wait();
    }
}

/// Processes whose process group is `pgid` (from /proc/<pid>/stat).
pub fn group_members(pgid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp ...: comm may hold spaces, so split after ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(2).and_then(|g| g.parse::<i32>().ok()) == Some(pgid) && fields[0] != "Z" {
            out.push(pid);
        }
    }
    out
}
