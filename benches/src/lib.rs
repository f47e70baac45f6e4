//! netboot's benchmarks: criterion benches per protocol crate in `benches/`, and the
//! side-by-side comparisons against peer servers (dnsmasq, Kea, nbdkit, tftpd-hpa, atftpd)
//! as binaries in `src/bin/`, which print ours-vs-theirs ratios from one run.
