//! CPU time and memory of a process from /proc (Linux).

/// Clock ticks per second of /proc/<pid>/stat times (USER_HZ, 100 on Linux).
const TICKS: f64 = 100.0;

#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    /// User + system CPU seconds since the process started.
    pub cpu_seconds: f64,
    pub rss_bytes: u64,
}

/// A process' /proc folder; `pid` = None: this process.
fn proc_dir(pid: Option<u32>) -> String {
    match pid {
        Some(p) => format!("/proc/{p}"),
        None => "/proc/self".to_owned(),
    }
}

/// The value of one `Name:` line of a process' /proc status file, trimmed.
fn status_field(pid: Option<u32>, name: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("{}/status", proc_dir(pid))).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(|v| v.trim().to_owned())
}

/// `pid` = None: this process.
pub fn sample(pid: Option<u32>) -> Option<Sample> {
    let stat = std::fs::read_to_string(format!("{}/stat", proc_dir(pid))).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let rss_kb: u64 = status_field(pid, "VmRSS")
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

/// A set of CPUs given as a list like the kernel's own (`0`, `0-1`, `0,2-3`).
#[derive(Clone, Debug, PartialEq)]
pub struct CpuList {
    cpus: Vec<usize>,
    text: String,
}

impl std::fmt::Display for CpuList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

pub fn parse_cpus(s: &str) -> Result<CpuList, String> {
    let bad = || format!("bad CPU list `{s}` (e.g. 0, 0-1 or 0,2-3)");
    let mut cpus = Vec::new();
    for part in s.split(',').map(str::trim) {
        let (first, last) = part.split_once('-').unwrap_or((part, part));
        let first: usize = first.trim().parse().map_err(|_| bad())?;
        let last: usize = last.trim().parse().map_err(|_| bad())?;
        if first > last || last >= nix::sched::CpuSet::count() {
            return Err(bad());
        }
        cpus.extend(first..=last);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(CpuList {
        cpus,
        text: s.trim().to_owned(),
    })
}

impl CpuList {
    fn set(&self) -> nix::sched::CpuSet {
        let mut set = nix::sched::CpuSet::new();
        for &cpu in &self.cpus {
            // In range: parse_cpus checked every CPU against CpuSet::count.
            let _ = set.set(cpu);
        }
        set
    }

    /// Runs the calling thread, and every thread it starts from now on, on these CPUs.
    pub fn pin_this_thread(&self) -> anyhow::Result<()> {
        nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &self.set())
            .map_err(|e| anyhow::anyhow!("pinning to CPUs {self}: {e}"))
    }

    /// Makes `command`'s process start on these CPUs (set between fork and exec, so every thread
    /// the program starts inherits them, with no window in which one runs elsewhere).
    pub fn pin_command(&self, command: &mut std::process::Command) {
        use std::os::unix::process::CommandExt;
        let set = self.set();
        // SAFETY: the closure runs in the forked child before exec; sched_setaffinity is a plain
        // system call (async-signal-safe), and the set was built before the fork.
        unsafe {
            command.pre_exec(move || {
                nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
                    .map_err(std::io::Error::from)
            });
        }
    }
}

/// The CPUs a process may run on, as the kernel lists them (`Cpus_allowed_list`).
pub fn cpus_allowed(pid: Option<u32>) -> Option<String> {
    status_field(pid, "Cpus_allowed_list")
}

/// This machine's processor and how many CPUs it has online (all of them, whatever this process
/// is pinned to): runs made on different machines are not comparable, and a VM can move to other
/// hardware between runs. See [`describe_machine`].
pub fn machine() -> Option<String> {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .map(|cpuinfo| describe_machine(&cpuinfo))
}

/// E.g. "AMD EPYC × 2 (family 25, model 17; AES-NI, AVX2, AVX-512, VAES)". The model name alone
/// did not tell two kinds of VM apart ("AMD EPYC" with and without AVX-512): family and model
/// do, and the instruction sets named are the ones that pick the SRTP cipher's code path, which
/// moved lens' cost per packet between two machines more than Janus'.
pub fn describe_machine(cpuinfo: &str) -> String {
    let entries = || {
        cpuinfo
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(key, value)| (key.trim(), value.trim()))
    };
    // The first processor's block: every CPU of one VM reports the same.
    let field = |name: &str| entries().find(|(key, _)| *key == name).map(|(_, v)| v);
    let model = field("model name").unwrap_or("unknown processor");
    let cpus = entries().filter(|(key, _)| *key == "processor").count();
    let flags: Vec<&str> = field("flags").unwrap_or("").split_whitespace().collect();
    let features: Vec<&str> = [
        ("aes", "AES-NI"),
        ("avx2", "AVX2"),
        ("avx512f", "AVX-512"),
        ("vaes", "VAES"),
    ]
    .into_iter()
    .filter(|(flag, _)| flags.contains(flag))
    .map(|(_, name)| name)
    .collect();
    let mut detail = Vec::new();
    if let (Some(family), Some(number)) = (field("cpu family"), field("model")) {
        detail.push(format!("family {family}, model {number}"));
    }
    if !features.is_empty() {
        detail.push(features.join(", "));
    }
    if detail.is_empty() {
        format!("{model} × {cpus}")
    } else {
        format!("{model} × {cpus} ({})", detail.join("; "))
    }
}

/// The 1-, 5- and 15-minute load averages of this machine.
pub fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut fields = text.split_whitespace().map(|f| f.parse::<f64>().ok());
    Some([fields.next()??, fields.next()??, fields.next()??])
}

#[cfg(test)]
mod tests {
    #[test]
    fn cpu_lists_parse_as_the_kernel_writes_them() {
        assert_eq!(super::parse_cpus("0").unwrap().cpus, [0]);
        assert_eq!(super::parse_cpus("0-1").unwrap().cpus, [0, 1]);
        assert_eq!(super::parse_cpus("3,0-1,1").unwrap().cpus, [0, 1, 3]);
        for bad in ["", "a", "1-0", "0-", "-1", "99999"] {
            assert!(super::parse_cpus(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_pinned_child_runs_only_on_its_cpus() {
        let allowed = super::cpus_allowed(None).unwrap();
        let first = allowed.split([',', '-']).next().unwrap().to_owned();
        let cpus = super::parse_cpus(&first).unwrap();
        let mut command = std::process::Command::new("grep");
        command.args(["Cpus_allowed_list", "/proc/self/status"]);
        cpus.pin_command(&mut command);
        let out = command.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text.split(':').nth(1).map(str::trim), Some(first.as_str()));
    }

    #[test]
    fn the_machine_names_its_processor_and_cpus() {
        let machine = super::machine().unwrap();
        let (_, cpus) = machine.rsplit_once(" × ").unwrap();
        let cpus = cpus.split(' ').next().unwrap();
        assert!(cpus.parse::<usize>().unwrap() >= 1, "{machine}");
    }

    /// Two VMs whose model name is the same "AMD EPYC" are told apart (cpuinfo as Linux writes
    /// it, cut to the fields read and a few flags).
    #[test]
    fn machines_with_one_model_name_are_told_apart() {
        let cpu = |n: u32, model: u32, flags: &str| {
            format!(
                "processor\t: {n}\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: {model}\n\
                 model name\t: AMD EPYC\nflags\t\t: fpu sse2 {flags}\n\n"
            )
        };
        let with_avx512 = "pclmulqdq aes avx avx2 avx512f avx512vl vaes vpclmulqdq";
        let two = cpu(0, 17, with_avx512) + &cpu(1, 17, with_avx512);
        assert_eq!(
            super::describe_machine(&two),
            "AMD EPYC × 2 (family 25, model 17; AES-NI, AVX2, AVX-512, VAES)"
        );
        let without = "pclmulqdq aes avx avx2";
        let two = cpu(0, 1, without) + &cpu(1, 1, without);
        assert_eq!(
            super::describe_machine(&two),
            "AMD EPYC × 2 (family 25, model 1; AES-NI, AVX2)"
        );
        assert_eq!(super::describe_machine(""), "unknown processor × 0");
    }

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let s = super::sample(None).unwrap();
        assert!(s.rss_bytes > 0);
        assert!(s.cpu_seconds >= 0.0);
    }
}
