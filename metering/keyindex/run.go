package keyindex

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"math/bits"
	"os"
	"sort"
)

// A run is an immutable file of entries sorted by fingerprint, with fixed
// 28-byte records, so a key is found with one read of its bucket:
//
//	magic (8 bytes)
//	records: n × (Hi 8, Lo 8, Hash 8, Time 4), little-endian, Hi then Lo ascending, no fingerprint twice
//	buckets: (2^bits + 1) × uint32, the index of the first record of each bucket (a bucket is the top bits of Hi)
//	footer: n 8, bits 4, CRC-32C of the records 4, CRC-32C of the buckets 4, 0 4, magic 8
//
// The bucket table is held in memory (4 bytes per ~100 keys); the records
// are read with pread, so they cost page cache, not the process's memory.
const (
	recordSize   = 28
	footerSize   = 32
	headerSize   = 8
	bucketTarget = 128 // records per bucket, on average at most
)

var runMagic = [8]byte{'P', 'S', 'T', 'K', 'E', 'Y', 'S', '1'}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errCorrupt marks a run that does not read back as written.
var errCorrupt = errors.New("key index file is corrupt")

func bucketBits(maxRecords uint64) uint {
	if maxRecords <= bucketTarget {
		return 0
	}
	return min(uint(bits.Len64((maxRecords-1)/bucketTarget)), 30)
}

func bucketOf(hi uint64, b uint) uint64 {
	if b == 0 {
		return 0
	}
	return hi >> (64 - b)
}

func putRecord(b []byte, e Entry) {
	binary.LittleEndian.PutUint64(b[0:], e.FP.Hi)
	binary.LittleEndian.PutUint64(b[8:], e.FP.Lo)
	binary.LittleEndian.PutUint64(b[16:], e.Value.Hash)
	binary.LittleEndian.PutUint32(b[24:], e.Value.Time)
}

func getRecord(b []byte) Entry {
	return Entry{
		FP:    Fingerprint{Hi: binary.LittleEndian.Uint64(b[0:]), Lo: binary.LittleEndian.Uint64(b[8:])},
		Value: Value{Hash: binary.LittleEndian.Uint64(b[16:]), Time: binary.LittleEndian.Uint32(b[24:])},
	}
}

// smallRun is the size up to which a run has a filter of its own (10 bits
// a key: at most ~1.3 MB each, and the size-tiered merges keep few such
// runs). A key that passed the store's filter then costs a read only in
// the runs whose own filter does not rule it out: in practice the few
// large runs.
const smallRun = 1 << 20

// smallRunFilterBytes sizes a small run's filter for n keys.
func smallRunFilterBytes(n uint64) int64 { return int64(n)*10/8 + blockWords*8 }

// runWriter writes a run file from entries given in ascending order.
type runWriter struct {
	filter  *filter // for a small run
	path    string
	f       *os.File
	w       *bufio.Writer
	crc     hash.Hash32
	bits    uint
	buckets []uint32
	next    uint64 // first bucket whose start is not set yet
	n       uint64
	last    Fingerprint
	rec     [recordSize]byte
}

// createRun starts a run file at path for at most maxRecords entries.
func createRun(path string, maxRecords uint64) (*runWriter, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	b := bucketBits(maxRecords)
	w := &runWriter{path: path, f: f, w: bufio.NewWriterSize(f, 1<<20), crc: crc32.New(castagnoli), bits: b, buckets: make([]uint32, (1<<b)+1)}
	if maxRecords <= smallRun {
		if w.filter, err = newFilter(smallRunFilterBytes(maxRecords)); err != nil {
			w.abort()
			return nil, err
		}
	}
	if _, err := w.w.Write(runMagic[:]); err != nil {
		w.abort()
		return nil, err
	}
	return w, nil
}

func (w *runWriter) add(e Entry) error {
	if w.n > 0 && !w.last.less(e.FP) {
		return fmt.Errorf("key index: entries out of order")
	}
	if w.n >= 1<<32-1 {
		return fmt.Errorf("key index: a run holds at most %d entries", uint64(1<<32-1))
	}
	for b := bucketOf(e.FP.Hi, w.bits); w.next <= b; w.next++ {
		w.buckets[w.next] = uint32(w.n)
	}
	putRecord(w.rec[:], e)
	w.crc.Write(w.rec[:])
	if w.filter != nil {
		w.filter.add(e.FP)
	}
	if _, err := w.w.Write(w.rec[:]); err != nil {
		return err
	}
	w.n++
	w.last = e.FP
	return nil
}

// finish completes the file, makes it durable and opens it for reading.
func (w *runWriter) finish(seq uint64) (*run, error) {
	for ; w.next < uint64(len(w.buckets)); w.next++ {
		w.buckets[w.next] = uint32(w.n)
	}
	bcrc := crc32.New(castagnoli)
	var b4 [4]byte
	for _, v := range w.buckets {
		binary.LittleEndian.PutUint32(b4[:], v)
		bcrc.Write(b4[:])
		if _, err := w.w.Write(b4[:]); err != nil {
			w.abort()
			return nil, err
		}
	}
	var foot [footerSize]byte
	binary.LittleEndian.PutUint64(foot[0:], w.n)
	binary.LittleEndian.PutUint32(foot[8:], uint32(w.bits))
	binary.LittleEndian.PutUint32(foot[12:], w.crc.Sum32())
	binary.LittleEndian.PutUint32(foot[16:], bcrc.Sum32())
	copy(foot[24:], runMagic[:])
	if _, err := w.w.Write(foot[:]); err != nil {
		w.abort()
		return nil, err
	}
	if err := w.w.Flush(); err != nil {
		w.abort()
		return nil, err
	}
	if err := w.f.Sync(); err != nil {
		w.abort()
		return nil, err
	}
	if err := w.f.Close(); err != nil {
		os.Remove(w.path)
		return nil, err
	}
	r := &run{path: w.path, seq: seq, n: w.n, bits: w.bits, buckets: w.buckets, filter: w.filter}
	w.filter = nil
	var err error
	if r.f, err = os.Open(w.path); err != nil {
		r.close()
		os.Remove(w.path)
		return nil, err
	}
	r.size = headerSize + int64(w.n)*recordSize + int64(len(w.buckets))*4 + footerSize
	return r, nil
}

// abort removes the unfinished file.
func (w *runWriter) abort() {
	w.f.Close()
	os.Remove(w.path)
	if w.filter != nil {
		w.filter.close()
	}
}

// run is an open run file.
type run struct {
	path    string
	seq     uint64 // the number in its file name
	f       *os.File
	n       uint64
	bits    uint
	buckets []uint32
	size    int64
	filter  *filter // a small run's own filter (filled by its writer or by Store.load), else nil
}

// openRun opens a run and loads its bucket table (the records are checked
// when they are scanned).
func openRun(path string, seq uint64) (*run, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	r, err := loadRun(f, path, seq)
	if err != nil {
		f.Close()
		return nil, err
	}
	return r, nil
}

func loadRun(f *os.File, path string, seq uint64) (*run, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	var head [headerSize]byte
	var foot [footerSize]byte
	if size < headerSize+footerSize {
		return nil, fmt.Errorf("%s: %w (%d bytes)", path, errCorrupt, size)
	}
	if _, err := f.ReadAt(head[:], 0); err != nil {
		return nil, err
	}
	if _, err := f.ReadAt(foot[:], size-footerSize); err != nil {
		return nil, err
	}
	if [8]byte(head[:]) != runMagic || [8]byte(foot[24:]) != runMagic {
		return nil, fmt.Errorf("%s: %w (no magic)", path, errCorrupt)
	}
	n := binary.LittleEndian.Uint64(foot[0:])
	b := uint(binary.LittleEndian.Uint32(foot[8:]))
	if b > 30 || size != headerSize+int64(n)*recordSize+((1<<b)+1)*4+footerSize {
		return nil, fmt.Errorf("%s: %w (sizes do not add up)", path, errCorrupt)
	}
	raw := make([]byte, ((1<<b)+1)*4)
	if _, err := f.ReadAt(raw, headerSize+int64(n)*recordSize); err != nil {
		return nil, err
	}
	if crc32.Checksum(raw, castagnoli) != binary.LittleEndian.Uint32(foot[16:]) {
		return nil, fmt.Errorf("%s: %w (bucket table checksum)", path, errCorrupt)
	}
	buckets := make([]uint32, (1<<b)+1)
	for i := range buckets {
		buckets[i] = binary.LittleEndian.Uint32(raw[i*4:])
		if uint64(buckets[i]) > n || (i > 0 && buckets[i] < buckets[i-1]) {
			return nil, fmt.Errorf("%s: %w (bucket table)", path, errCorrupt)
		}
	}
	return &run{path: path, seq: seq, f: f, n: n, bits: b, buckets: buckets, size: size}, nil
}

// recordsCRC is the records' checksum recorded in the footer.
func (r *run) recordsCRC() (uint32, error) {
	var foot [footerSize]byte
	if _, err := r.f.ReadAt(foot[:], r.size-footerSize); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(foot[12:]), nil
}

// get reads fp's bucket (one pread) and looks fp up in it. buf is scratch
// space, grown as needed.
func (r *run) get(fp Fingerprint, buf *[]byte) (Value, bool, error) {
	b := bucketOf(fp.Hi, r.bits)
	lo, hi := uint64(r.buckets[b]), uint64(r.buckets[b+1])
	if lo == hi {
		return Value{}, false, nil
	}
	need := int((hi - lo) * recordSize)
	if cap(*buf) < need {
		*buf = make([]byte, need)
	}
	p := (*buf)[:need]
	if _, err := r.f.ReadAt(p, headerSize+int64(lo)*recordSize); err != nil {
		return Value{}, false, fmt.Errorf("read key index %s: %w", r.path, err)
	}
	cnt := int(hi - lo)
	i := sort.Search(cnt, func(i int) bool {
		o := i * recordSize
		return !(Fingerprint{binary.LittleEndian.Uint64(p[o:]), binary.LittleEndian.Uint64(p[o+8:])}).less(fp)
	})
	if i < cnt {
		e := getRecord(p[i*recordSize:])
		if e.FP == fp {
			return e.Value, true, nil
		}
	}
	return Value{}, false, nil
}

func (r *run) close() {
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
	if r.filter != nil {
		r.filter.close()
		r.filter = nil
	}
}

// runIter reads a run's records in order and checks their checksum at the
// end.
type runIter struct {
	r     *run
	br    *bufio.Reader
	left  uint64
	crc   hash.Hash32
	rec   [recordSize]byte
	err   error
	entry Entry
}

func (r *run) iter(bufSize int) *runIter {
	sr := io.NewSectionReader(r.f, headerSize, int64(r.n)*recordSize)
	return &runIter{r: r, br: bufio.NewReaderSize(sr, bufSize), left: r.n, crc: crc32.New(castagnoli)}
}

// next advances to the next entry; false at the end or on an error (err).
func (it *runIter) next() bool {
	if it.err != nil || it.left == 0 {
		return false
	}
	if _, err := io.ReadFull(it.br, it.rec[:]); err != nil {
		it.err = fmt.Errorf("read key index %s: %w", it.r.path, err)
		return false
	}
	it.crc.Write(it.rec[:])
	it.left--
	it.entry = getRecord(it.rec[:])
	if it.left == 0 {
		want, err := it.r.recordsCRC()
		if err != nil {
			it.err = err
		} else if want != it.crc.Sum32() {
			it.err = fmt.Errorf("%s: %w (records checksum)", it.r.path, errCorrupt)
		}
	}
	return true
}
