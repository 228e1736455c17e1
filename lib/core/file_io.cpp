#include "core/file_io.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <vector>

#include "core/error.h"

namespace ckpt {

namespace {

const char* file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  return "not a regular file";
}

}  // namespace

File File::open_read(const std::string& path) {
  File f;
  f.path_ = path;
  // O_NONBLOCK: opening a FIFO for reading waits for a writer, forever if none comes; with it the
  // open returns at once, and anything that is not a regular file (a symlink is followed) is
  // refused before a byte is read. Regular files ignore the flag; it is cleared all the same.
  f.fd_ = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (f.fd_ < 0) fail_errno(path, "cannot open");
  struct stat st;
  if (::fstat(f.fd_, &st) != 0) fail_errno(path, "cannot stat");
  if (!S_ISREG(st.st_mode))
    fail(Errc::kIo, path, "", std::string("is ") + file_kind(st.st_mode) + ", not a regular file; refusing to read it");
  const int flags = ::fcntl(f.fd_, F_GETFL);
  if (flags < 0 || ::fcntl(f.fd_, F_SETFL, flags & ~O_NONBLOCK) != 0) fail_errno(path, "cannot clear O_NONBLOCK");
  return f;
}

File File::create(const std::string& path) {
  File f;
  f.path_ = path;
  f.fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);  // less the umask
  if (f.fd_ < 0) fail_errno(path, "cannot create");
  return f;
}

File File::open_direct_write(const std::string& path) {
  File f;
  f.path_ = path;
  f.fd_ = ::open(path.c_str(), O_WRONLY | O_DIRECT | O_CLOEXEC);
  if (f.fd_ < 0 && errno != EINVAL) fail_errno(path, "cannot open for writing");
  return f;
}

File& File::operator=(File&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.fd_;
    path_ = std::move(o.path_);
    o.fd_ = -1;
  }
  return *this;
}

File::~File() {
  if (fd_ >= 0) ::close(fd_);
}

void File::close() {
  if (fd_ < 0) return;
  const int fd = fd_;
  fd_ = -1;
  // Linux releases the descriptor even when close fails (EIO, ENOSPC on NFS): never retry.
  if (::close(fd) != 0) fail_errno(path_, "close failed (the data may not have been written)");
}

uint64_t File::size() const {
  struct stat st;
  if (::fstat(fd_, &st) != 0) fail_errno(path_, "cannot stat");
  return static_cast<uint64_t>(st.st_size);
}

void File::pread_exact(void* buf, size_t n, uint64_t offset) const {
  auto* p = static_cast<uint8_t*>(buf);
  while (n > 0) {
    ssize_t r = ::pread(fd_, p, n, static_cast<off_t>(offset));
    if (r < 0) {
      if (errno == EINTR) continue;
      fail_errno(path_, "read failed");
    }
    if (r == 0) fail(Errc::kIo, path_, "", "unexpected end of file (the file changed while reading?)");
    p += r;
    n -= static_cast<size_t>(r);
    offset += static_cast<uint64_t>(r);
  }
}

void File::pwrite_exact(const void* buf, size_t n, uint64_t offset) const {
  auto* p = static_cast<const uint8_t*>(buf);
  while (n > 0) {
    ssize_t r = ::pwrite(fd_, p, n, static_cast<off_t>(offset));
    if (r < 0) {
      if (errno == EINTR) continue;
      fail_errno(path_, "write failed");
    }
    p += r;
    n -= static_cast<size_t>(r);
    offset += static_cast<uint64_t>(r);
  }
}

void File::truncate(uint64_t size) const {
  if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) fail_errno(path_, "cannot set size");
}

void File::sync() const {
  if (::fsync(fd_) != 0) fail_errno(path_, "fsync failed");
}

OutputFileWriter OutputFileWriter::create(const std::string& path, uint64_t size, bool direct) {
  OutputFileWriter w;
  w.file_ = File::create(path);
  if (direct) {
    w.direct_ = File::open_direct_write(path);
    // EOPNOTSUPP: a file system that cannot reserve; the writes then allocate as they go.
    if (w.direct() && size > 0 && ::fallocate(w.file_.fd(), 0, 0, static_cast<off_t>(size)) != 0 &&
        errno != EOPNOTSUPP)
      fail_errno(path, "cannot reserve " + std::to_string(size) + " bytes");
  }
  w.file_.truncate(size);
  return w;
}

void OutputFileWriter::write(const void* buf, size_t n, uint64_t offset) const {
  const auto* p = static_cast<const uint8_t*>(buf);
  const uint64_t a = (offset + kDirectAlign - 1) / kDirectAlign * kDirectAlign;  // first whole page
  const uint64_t b = (offset + n) / kDirectAlign * kDirectAlign;                  // end of the last
  if (!direct() || a >= b || (reinterpret_cast<uintptr_t>(p) - offset) % kDirectAlign != 0)
    return file_.pwrite_exact(p, n, offset);
  file_.pwrite_exact(p, a - offset, offset);
  uint64_t done = 0;
  while (a + done < b) {
    const ssize_t r = ::pwrite(direct_.fd(), p + (a - offset) + done, b - a - done, static_cast<off_t>(a + done));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0 && (r == 0 || errno == EINVAL)) break;  // no direct write here: the rest goes buffered
    if (r < 0) fail_errno(path(), "write failed");
    done += static_cast<uint64_t>(r);
  }
  file_.pwrite_exact(p + (a - offset) + done, offset + n - a - done, a + done);
}

void OutputFileWriter::start_writeback(uint64_t offset, uint64_t n) const {
  // Direct writes are on the disk already (a chunk's two end pages are left to the fsync).
  if (!direct()) ::sync_file_range(file_.fd(), static_cast<off64_t>(offset), static_cast<off64_t>(n), SYNC_FILE_RANGE_WRITE);
}

void OutputFileWriter::close() {
  direct_.close();
  file_.close();
}

WriteBehind::WriteBehind(size_t buffers, size_t bytes, int writers)
    : bytes_((bytes + kDirectAlign - 1) / kDirectAlign * kDirectAlign), arena_(nullptr, &std::free) {
  constexpr size_t kHuge = 2u << 20;
  const size_t size = (buffers * bytes_ + kHuge - 1) / kHuge * kHuge;
  arena_.reset(static_cast<uint8_t*>(std::aligned_alloc(kHuge, size)));
  if (!arena_) throw std::bad_alloc();
  ::madvise(arena_.get(), size, MADV_HUGEPAGE);  // a hint: without THP it is ordinary memory
  for (size_t i = buffers; i-- > 0;) free_.push_back(arena_.get() + i * bytes_);
  for (int i = 0; i < writers; ++i) threads_.emplace_back([this] { run(); });
}

WriteBehind::~WriteBehind() {
  {
    std::lock_guard<std::mutex> lock(m_);
    stop_ = true;
  }
  queued_.notify_all();
  for (auto& t : threads_) t.join();  // the writers finish the queue first: its buffers are ours
}

void WriteBehind::rethrow_locked() {
  if (error_) std::rethrow_exception(error_);
}

uint8_t* WriteBehind::acquire() {
  std::unique_lock<std::mutex> lock(m_);
  freed_.wait(lock, [&] { return !free_.empty() || error_; });
  rethrow_locked();
  uint8_t* b = free_.back();
  free_.pop_back();
  return b;
}

void WriteBehind::release(uint8_t* buf) {
  {
    std::lock_guard<std::mutex> lock(m_);
    free_.push_back(buf);
  }
  freed_.notify_all();
}

void WriteBehind::submit(const OutputFileWriter& file, uint8_t* buf, const uint8_t* data, size_t n, uint64_t offset) {
  std::unique_lock<std::mutex> lock(m_);
  jobs_.push_back({&file, buf, data, n, offset});
  if (!threads_.empty()) {
    lock.unlock();
    queued_.notify_one();
    return;
  }
  if (std::find(draining_.begin(), draining_.end(), &file) != draining_.end()) return;  // its writer takes it
  draining_.push_back(&file);
  drain_locked(lock, file);
}

void WriteBehind::drain_locked(std::unique_lock<std::mutex>& lock, const OutputFileWriter& file) {
  for (;;) {
    const auto it = std::find_if(jobs_.begin(), jobs_.end(), [&](const Job& j) { return j.file == &file; });
    if (it == jobs_.end()) break;
    const Job j = *it;
    jobs_.erase(it);
    if (const std::exception_ptr e = write_job(lock, j)) {
      if (!error_) error_ = e;
      draining_.erase(std::find(draining_.begin(), draining_.end(), &file));
      std::rethrow_exception(e);
    }
  }
  draining_.erase(std::find(draining_.begin(), draining_.end(), &file));
  freed_.notify_all();  // finish() waits for the queue to empty
}

void WriteBehind::run() {
  std::unique_lock<std::mutex> lock(m_);
  for (;;) {
    queued_.wait(lock, [&] { return !jobs_.empty() || stop_; });
    if (jobs_.empty()) return;
    const Job j = jobs_.front();
    jobs_.pop_front();
    const std::exception_ptr e = write_job(lock, j);
    if (e && !error_) error_ = e;
  }
}

std::exception_ptr WriteBehind::write_job(std::unique_lock<std::mutex>& lock, const Job& j) {
  ++busy_;
  const bool skip = static_cast<bool>(error_);
  lock.unlock();
  std::exception_ptr e;
  if (!skip) {
    try {
      j.file->write(j.data, j.n, j.offset);
    } catch (...) {
      e = std::current_exception();
    }
  }
  lock.lock();
  --busy_;
  free_.push_back(j.buf);
  freed_.notify_all();  // acquire() and finish() both wait on it
  return e;
}

void WriteBehind::finish() {
  std::unique_lock<std::mutex> lock(m_);
  freed_.wait(lock, [&] { return (jobs_.empty() && busy_ == 0) || error_; });
  rethrow_locked();
}

void copy_file_bytes(const File& src, uint64_t src_off, const File& dst, uint64_t dst_off,
                     uint64_t n) {
  while (n > 0) {
    loff_t in = static_cast<loff_t>(src_off), out = static_cast<loff_t>(dst_off);
    ssize_t r = ::copy_file_range(src.fd(), &in, dst.fd(), &out, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      // EXDEV/ENOSYS/EINVAL on file systems or kernels without support: copy through a buffer.
      if (r < 0 && errno != EXDEV && errno != ENOSYS && errno != EINVAL && errno != EOPNOTSUPP)
        fail_errno(dst.path(), "copy_file_range failed");
      if (r == 0 && n > 0 && src_off >= src.size())
        fail(Errc::kIo, src.path(), "", "unexpected end of file while copying");
      std::vector<uint8_t> buf(std::min<uint64_t>(n, 4u << 20));
      while (n > 0) {
        size_t k = static_cast<size_t>(std::min<uint64_t>(n, buf.size()));
        src.pread_exact(buf.data(), k, src_off);
        dst.pwrite_exact(buf.data(), k, dst_off);
        src_off += k;
        dst_off += k;
        n -= k;
      }
      return;
    }
    src_off += static_cast<uint64_t>(r);
    dst_off += static_cast<uint64_t>(r);
    n -= static_cast<uint64_t>(r);
  }
}

MappedFile::MappedFile(const File& f) : size_(f.size()) {
  if (size_ == 0) return;
  void* p = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, f.fd(), 0);
  if (p == MAP_FAILED) fail_errno(f.path(), "cannot mmap");
  data_ = static_cast<const uint8_t*>(p);
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

std::string read_text_file(const std::string& path) {
  File f = File::open_read(path);
  std::string s(f.size(), '\0');
  if (!s.empty()) f.pread_exact(s.data(), s.size(), 0);
  return s;
}

void write_text_file(const std::string& path, const std::string& content) {
  File f = File::create(path);
  f.pwrite_exact(content.data(), content.size(), 0);
  f.close();
}

}  // namespace ckpt
