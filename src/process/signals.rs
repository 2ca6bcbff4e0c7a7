//! Signal dispositions for a child about to exec, through the raw system call: glibc's
//! `sigaction` refuses its internal signals 32 and 33, which runpm's parent may have left
//! ignored. Both functions make only system calls and allocate nothing, so they may run
//! between clone and exec.

/// The kernel's `struct sigaction`, all zero: SIG_DFL, no flags, an empty mask. At least as
/// large as the kernel's on every Linux architecture.
const DEFAULT: [u64; 4] = [0; 4];

/// Sets every signal in `mask` (bit `n - 1` for signal `n`) back to its default. SIGKILL and
/// SIGSTOP refuse, which is fine.
pub fn set_default(mask: u64) {
    for sig in (1..=64u32).filter(|s| mask & (1u64 << (s - 1)) != 0) {
        // SAFETY: `DEFAULT` is static and large enough; no old action is asked for.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                DEFAULT.as_ptr(),
                std::ptr::null_mut::<u8>(),
                8,
            )
        };
    }
}

/// The signals whose disposition is not the default (a handler, or ignored); a signal that
/// cannot be read is counted in.
pub fn non_default() -> u64 {
    let mut mask = 0u64;
    for sig in 1..=64u32 {
        let mut current = [0u64; 4];
        // SAFETY: a query; `current` is as large as the kernel's struct.
        let queried = unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                std::ptr::null::<u8>(),
                current.as_mut_ptr(),
                8,
            )
        };
        if queried != 0 || current[0] != libc::SIG_DFL as u64 {
            mask |= 1 << (sig - 1);
        }
    }
    mask
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::{SigHandler, Signal, signal};

    #[test]
    fn finds_ignored_signals_and_sets_them_back() {
        let bit = |s: Signal| 1u64 << (s as i32 - 1);
        // SAFETY: SIG_IGN installs no handler code; nextest runs this test alone in its process.
        unsafe { signal(Signal::SIGUSR2, SigHandler::SigIgn) }.unwrap();
        assert_ne!(non_default() & bit(Signal::SIGUSR2), 0);
        set_default(bit(Signal::SIGUSR2));
        assert_eq!(non_default() & bit(Signal::SIGUSR2), 0);
    }
}
