//! Measurement from /proc: CPU time, start time and state of a process, its memory, the
//! load average and the clock tick.

/// CPU time (utime + stime, clock ticks), start time and state of `pid` (whole process).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProcStat {
    pub(crate) cpu_ticks: u64,
    pub(crate) start_time: u64,
    pub(crate) state: char,
}

pub(crate) fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: fields after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime 15, starttime 22.
    let num = |field: usize| f.get(field - 3).and_then(|v| v.parse::<u64>().ok());
    Some(ProcStat {
        cpu_ticks: num(14)? + num(15)?,
        start_time: num(22)?,
        state: f.first()?.chars().next()?,
    })
}

/// Whether `pid` is still the process that started at `start_time`, and not a zombie.
pub(crate) fn same_process_alive(pid: u32, start_time: u64) -> bool {
    proc_stat(pid).is_some_and(|s| s.start_time == start_time && s.state != 'Z' && s.state != 'X')
}

/// VmRSS and VmHWM of `pid`, KiB.
pub(crate) fn proc_mem(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

pub(crate) fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

pub(crate) fn mb(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
