//! CPU time and memory of a process from /proc (Linux).

/// Clock ticks per second of /proc/<pid>/stat times (USER_HZ, 100 on Linux).
const TICKS: f64 = 100.0;

#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    /// User + system CPU seconds since the process started.
    pub cpu_seconds: f64,
    pub rss_bytes: u64,
}

/// `pid` = None: this process.
pub fn sample(pid: Option<u32>) -> Option<Sample> {
    let dir = match pid {
        Some(p) => format!("/proc/{p}"),
        None => "/proc/self".to_owned(),
    };
    let stat = std::fs::read_to_string(format!("{dir}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("{dir}/status")).ok()?;
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    Some(Sample {
        cpu_seconds: (utime + stime) / TICKS,
        rss_bytes: rss_kb * 1024,
    })
}

/// The pid of the process listening on TCP `port` on this machine, found through the socket's
/// inode in /proc/net/tcp{,6} and the processes' open file descriptors.
pub fn pid_listening_on(port: u16) -> Option<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address is "HEXIP:HEXPORT"; state 0A is LISTEN.
            let Some(local) = f.get(1) else { continue };
            let Some(p) = local.rsplit(':').next() else {
                continue;
            };
            if u16::from_str_radix(p, 16).ok() == Some(port)
                && f.get(3) == Some(&"0A")
                && let Some(inode) = f.get(9)
            {
                inodes.push(format!("socket:[{inode}]"));
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path())
                && inodes.iter().any(|i| target.to_string_lossy() == *i)
            {
                return Some(pid);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let s = super::sample(None).unwrap();
        assert!(s.rss_bytes > 0);
        assert!(s.cpu_seconds >= 0.0);
    }
}
