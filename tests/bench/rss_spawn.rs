//! Runs one program and prints its peak resident set size (KiB) and wall time (µs).
//!
//! Why not wait4 from the Python harness directly: Python starts children with
//! vfork-style spawning (or fork), and Linux carries the parent's resident pages into
//! the child's high-water mark until exec, so every child of a 25 MB Python process
//! would report at least 25 MB. This program is small, so the floor it adds is small,
//! and the benchmark reports that floor (the same measurement of `/bin/true`).
//!
//! Usage: rss_spawn PROGRAM ARGS...   (prints "maxrss_kib wall_us exit_code")
//! Built by the benchmark with `rustc -O`; it needs nothing but std.

use std::process::{Command, Stdio};
use std::time::Instant;

unsafe extern "C" {
    // struct rusage on 64-bit Linux: two struct timeval (2 x i64 each), then 14 longs;
    // ru_maxrss is the first long, at index 4 of an [i64; 18].
    fn wait4(pid: i32, status: *mut i32, options: i32, rusage: *mut [i64; 18]) -> i32;
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((program, rest)) = args.split_first() else {
        eprintln!("rss_spawn: usage: rss_spawn PROGRAM ARGS...");
        std::process::exit(2);
    };
    let start = Instant::now();
    let child = match Command::new(program)
        .args(rest)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rss_spawn: cannot start {program}: {e}");
            std::process::exit(127);
        }
    };
    let pid = i32::try_from(child.id()).unwrap_or(-1);
    let mut status = 0i32;
    let mut usage = [0i64; 18];
    // SAFETY: pid is our own child; status and usage are valid, writable, and sized
    // as the kernel expects on 64-bit Linux.
    let got = unsafe { wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    if got != pid {
        eprintln!("rss_spawn: wait4 failed for {program}");
        std::process::exit(1);
    }
    let code = if status & 0x7f == 0 {
        (status >> 8) & 0xff
    } else {
        128 + (status & 0x7f)
    };
    println!("{} {} {}", usage[4], wall.as_micros(), code);
}
