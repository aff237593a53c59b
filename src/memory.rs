//! The process's memory between phases of one command.

/// Hands the heap memory freed so far back to the system. glibc keeps
/// freed chunks in its arenas (one per thread that allocated) for reuse,
/// so a phase that allocated and freed tens of megabytes, such as an
/// import's batches, would otherwise still count in the peak of the phase
/// that follows it. Elsewhere: nothing.
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it
    // takes no pointers and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Keeps large allocations (1 MiB and up) in their own mappings, returned
/// to the system when freed. glibc otherwise raises its mapping threshold
/// to the size of each large block freed (up to 32 MiB), after which the
/// manifests, snapshots and lists of a command of 10^5 files come from the
/// heap and stay counted in its RSS once freed.
pub fn map_large_allocations() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt sets a tunable of the allocator; called first thing
    // in main, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}
