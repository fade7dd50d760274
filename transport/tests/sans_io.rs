//! The sans-IO core stays sans-IO: no thread, channel, lock, clock or socket
//! in transport/src/proto (the drivers in transport/src/io hold those).

#[test]
fn the_core_starts_no_thread_and_reads_no_clock() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/proto");
    let forbidden = [
        "std::thread",
        "thread::spawn",
        "thread::scope",
        "mpsc",
        "Mutex",
        "RwLock",
        "Condvar",
        "Instant::now",
        "SystemTime",
        "UdpSocket",
        "mio::",
        "socket2",
        "std::fs",
    ];
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        files += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            // A file's unit tests (its last item, by house style) are not the core.
            if code.starts_with("#[cfg(test)]") {
                break;
            }
            if code.starts_with("//") {
                continue;
            }
            for f in forbidden {
                assert!(
                    !code.contains(f),
                    "{}:{}: `{f}` in the sans-IO core: {line}",
                    path.display(),
                    n + 1
                );
            }
        }
    }
    assert!(files >= 5, "read only {files} files of {}", dir.display());
}
