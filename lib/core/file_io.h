// Thin, checked wrappers over POSIX file I/O. Every function names the file in its error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace ckpt {

// An owned file descriptor.
class File {
 public:
  File() = default;
  // Opens a regular file (or a symlink to one) for reading; FIFOs, devices, sockets and
  // directories are refused without blocking.
  static File open_read(const std::string& path);
  // Creates (O_EXCL) a new file for writing, mode 0666 less the umask.
  static File create(const std::string& path);
  File(File&& o) noexcept : fd_(o.fd_), path_(std::move(o.path_)) { o.fd_ = -1; }
  File& operator=(File&& o) noexcept;
  File(const File&) = delete;
  File& operator=(const File&) = delete;
  ~File();

  int fd() const { return fd_; }
  const std::string& path() const { return path_; }
  uint64_t size() const;
  // Reads exactly n bytes at offset; a short read (the file shrank) is an error.
  void pread_exact(void* buf, size_t n, uint64_t offset) const;
  void pwrite_exact(const void* buf, size_t n, uint64_t offset) const;
  void truncate(uint64_t size) const;
  void sync() const;
  // Closes now and reports a failed close(2) (a deferred write error), which the destructor,
  // unable to throw, would lose. Output files are closed this way before they are committed.
  void close();

 private:
  int fd_ = -1;
  std::string path_;
};

// Copies n bytes from src@src_off to dst@dst_off inside the kernel (copy_file_range), falling
// back to a bounded user-space copy where the file systems do not support it.
void copy_file_bytes(const File& src, uint64_t src_off, const File& dst, uint64_t dst_off,
                     uint64_t n);

// A read-only memory map of a whole file (empty files map to nullptr/0).
class MappedFile {
 public:
  explicit MappedFile(const File& f);
  MappedFile(MappedFile&& o) noexcept : data_(o.data_), size_(o.size_) { o.data_ = nullptr; o.size_ = 0; }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();
  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }

 private:
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

std::string read_text_file(const std::string& path);
// Writes a whole new file (O_EXCL).
void write_text_file(const std::string& path, const std::string& content);

}  // namespace ckpt
