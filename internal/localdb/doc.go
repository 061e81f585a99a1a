// Package localdb runs private PostgreSQL and ClickHouse servers as child
// processes: `postage dev` keeps them under ./data, tests (through
// internal/testenv) in temporary directories.
//
// A server runs from its own directory, listens on 127.0.0.1 only (a free
// port unless one is given), and survives nothing but its data: it runs in
// its own process group, so Ctrl-C reaches the parent, which stops it
// gracefully with Stop, and it is killed by the kernel if the parent dies.
// The binaries are Debian's (clickhouse-server 18.16 or newer, postgresql 15
// or newer); when they are missing, the error says how to install them.
//
// Start both servers concurrently; each takes well under a second on an
// idle machine (initdb adds about a second on first use).
package localdb
