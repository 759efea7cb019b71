//! A throwaway PostgreSQL cluster owned by one test, which it may stop and start (issue 15: the
//! store restarted mid-session). The shared server of `scripts/test` cannot be restarted: other
//! tests use it at the same time. Made as `scripts/lib/postgres.sh` makes that one: the newest
//! `/usr/lib/postgresql/*/bin` (or `pg_config --bindir`, or `initdb` on PATH), and as root
//! everything runs as the `postgres` system user (initdb refuses root).

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct OwnPostgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    pub port: u16,
    /// `postgres://postgres@127.0.0.1:<port>/lens`
    pub url: String,
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn find_bin() -> Option<PathBuf> {
    let mut found: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let bin = e.path().join("bin");
            let version = e
                .file_name()
                .to_string_lossy()
                .split('.')
                .map(|p| p.parse().ok())
                .collect::<Option<Vec<u32>>>()?;
            (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()).then_some((version, bin))
        })
        .collect();
    found.sort();
    if let Some((_, bin)) = found.pop() {
        return Some(bin);
    }
    let from = |cmd: &mut Command| -> Option<PathBuf> {
        let out = cmd.output().ok().filter(|o| o.status.success())?;
        let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        Some(p)
    };
    if let Some(dir) = from(Command::new("pg_config").arg("--bindir"))
        && dir.join("initdb").is_file()
    {
        return Some(dir);
    }
    from(Command::new("sh").args(["-c", "command -v initdb"]))
        .and_then(|p| p.parent().map(Path::to_path_buf))
}

impl OwnPostgres {
    /// A fresh cluster with a database `lens`, started. `None` when PostgreSQL's server programs
    /// are not installed; with `CI=true` that is a failure, never a skip.
    pub fn start() -> Option<OwnPostgres> {
        let Some(bin) = find_bin() else {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("PostgreSQL server binaries (initdb, pg_ctl) not found but CI=true");
            }
            eprintln!(
                "PostgreSQL server binaries not found: skipping (apt-get install postgresql)"
            );
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("lens-own-pg.")
            .tempdir()
            .unwrap();
        if is_root() {
            let ok = Command::new("chown")
                .arg("postgres:")
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(ok.success(), "chown postgres: {}", dir.path().display());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = OwnPostgres {
            url: format!("postgres://postgres@127.0.0.1:{port}/lens"),
            bin,
            dir,
            port,
        };
        let data = pg.dir.path().join("data");
        pg.run(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "--no-locale".as_ref(),
                // Loopback only and thrown away: no password to manage.
                "--auth=trust".as_ref(),
            ],
        );
        pg.up();
        pg.psql("CREATE DATABASE lens");
        Some(pg)
    }

    /// Runs one SQL command as the superuser, over the Unix socket.
    pub fn psql(&self, sql: &str) {
        let port = self.port.to_string();
        let socket = self.socket_dir();
        self.run(
            "psql",
            &[
                "-X", "-q", "-h", &socket, "-p", &port, "-U", "postgres", "-d", "postgres", "-c",
                sql,
            ]
            .map(std::ffi::OsStr::new),
        );
    }

    /// The database `lens` for another role (trust: no password).
    pub fn url_as(&self, role: &str) -> String {
        format!("postgres://{role}@127.0.0.1:{}/lens", self.port)
    }

    fn socket_dir(&self) -> String {
        self.dir.path().display().to_string()
    }

    /// Runs one of PostgreSQL's programs (as `postgres` when root); panics with its output when
    /// it fails.
    fn run(&self, program: &str, args: &[&std::ffi::OsStr]) {
        let exe = self.bin.join(program);
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let out = cmd
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        assert!(
            out.status.success(),
            "{program} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn pg_ctl(&self, args: &[&str]) {
        let data = self.dir.path().join("data");
        let log = self.dir.path().join("server.log");
        let mut all: Vec<&std::ffi::OsStr> = vec![
            "-D".as_ref(),
            data.as_os_str(),
            "-l".as_ref(),
            log.as_os_str(),
        ];
        all.extend(args.iter().map(std::ffi::OsStr::new));
        self.run("pg_ctl", &all);
    }

    /// Starts the server (again) on the same port and data; returns once it accepts connections.
    pub fn up(&self) {
        // fsync etc. off: a throwaway cluster on a shared machine.
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c max_connections=100 -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off",
            self.port,
            self.socket_dir()
        );
        self.pg_ctl(&["-w", "-t", "60", "-o", &opts, "start"]);
    }

    /// Stops the server the way an administrator restarting it does (`-m fast`: sessions are
    /// disconnected, what was committed stays).
    pub fn down(&self) {
        self.pg_ctl(&["-w", "-t", "60", "-m", "fast", "stop"]);
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        if self.dir.path().join("data/postmaster.pid").exists() {
            let data = self.dir.path().join("data");
            let exe = self.bin.join("pg_ctl");
            let mut cmd = if is_root() {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(&exe);
                c
            } else {
                Command::new(&exe)
            };
            let _ = cmd
                .arg("-D")
                .arg(&data)
                .args(["-w", "-t", "30", "-m", "immediate", "stop"])
                .current_dir(self.dir.path())
                .output();
        }
    }
}
