#include "gds_reader.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "core/error.h"
#include "cuda_check.h"

#if CKPT_HAVE_CUFILE_H
// Where the build found NVIDIA's header, our declarations are checked against it.
#include <cufile.h>

#include <cstddef>
#include <type_traits>
static_assert(sizeof(ckpt::cuda::cufile::Error) == sizeof(CUfileError_t));
static_assert(offsetof(ckpt::cuda::cufile::Error, cu_err) == offsetof(CUfileError_t, cu_err));
static_assert(sizeof(ckpt::cuda::cufile::Descr) == sizeof(CUfileDescr_t));
static_assert(offsetof(ckpt::cuda::cufile::Descr, handle) == offsetof(CUfileDescr_t, handle));
static_assert(offsetof(ckpt::cuda::cufile::Descr, fs_ops) == offsetof(CUfileDescr_t, fs_ops));
static_assert(ckpt::cuda::cufile::kHandleTypeOpaqueFd == int{CU_FILE_HANDLE_TYPE_OPAQUE_FD});
static_assert(int{ckpt::cuda::cufile::kDriverNotInitialized} == int{CU_FILE_DRIVER_NOT_INITIALIZED});
static_assert(int{ckpt::cuda::cufile::kCudaDriverError} == int{CU_FILE_CUDA_DRIVER_ERROR});
static_assert(std::is_same_v<decltype(&cuFileRead), ssize_t (*)(CUfileHandle_t, void*, size_t, off_t, off_t)>);
static_assert(std::is_same_v<decltype(&cuFileBufRegister), CUfileError_t (*)(const void*, size_t, int)>);
#endif

namespace ckpt::cuda {

namespace cufile {

namespace {

// cufile.h's CUfileOpError names, by value, for error lines.
struct NamedError {
  int value;
  const char* name;
};
constexpr NamedError kErrorNames[] = {
    {5001, "CU_FILE_DRIVER_NOT_INITIALIZED"},   {5002, "CU_FILE_DRIVER_INVALID_PROPS"},
    {5003, "CU_FILE_DRIVER_UNSUPPORTED_LIMIT"}, {5004, "CU_FILE_DRIVER_VERSION_MISMATCH"},
    {5005, "CU_FILE_DRIVER_VERSION_READ_ERROR"}, {5006, "CU_FILE_DRIVER_CLOSING"},
    {5007, "CU_FILE_PLATFORM_NOT_SUPPORTED"},   {5008, "CU_FILE_IO_NOT_SUPPORTED"},
    {5009, "CU_FILE_DEVICE_NOT_SUPPORTED"},     {5010, "CU_FILE_NVFS_DRIVER_ERROR"},
    {5011, "CU_FILE_CUDA_DRIVER_ERROR"},        {5012, "CU_FILE_CUDA_POINTER_INVALID"},
    {5013, "CU_FILE_CUDA_MEMORY_TYPE_INVALID"}, {5014, "CU_FILE_CUDA_POINTER_RANGE_ERROR"},
    {5015, "CU_FILE_CUDA_CONTEXT_MISMATCH"},    {5016, "CU_FILE_INVALID_MAPPING_SIZE"},
    {5017, "CU_FILE_INVALID_MAPPING_RANGE"},    {5018, "CU_FILE_INVALID_FILE_TYPE"},
    {5019, "CU_FILE_INVALID_FILE_OPEN_FLAG"},   {5020, "CU_FILE_DIO_NOT_SET"},
    {5022, "CU_FILE_INVALID_VALUE"},            {5023, "CU_FILE_MEMORY_ALREADY_REGISTERED"},
    {5024, "CU_FILE_MEMORY_NOT_REGISTERED"},    {5025, "CU_FILE_PERMISSION_DENIED"},
    {5026, "CU_FILE_DRIVER_ALREADY_OPEN"},      {5027, "CU_FILE_HANDLE_NOT_REGISTERED"},
    {5028, "CU_FILE_HANDLE_ALREADY_REGISTERED"}, {5029, "CU_FILE_DEVICE_NOT_FOUND"},
    {5030, "CU_FILE_INTERNAL_ERROR"},           {5031, "CU_FILE_GETNEWFD_FAILED"},
    {5033, "CU_FILE_NVFS_SETUP_ERROR"},         {5034, "CU_FILE_IO_DISABLED"},
};

template <typename Fn>
void resolve(void* lib, Fn& fn, const char* symbol, const char* alternative, std::string& missing) {
  void* p = dlsym(lib, symbol);
  if (!p && alternative) p = dlsym(lib, alternative);
  if (!p) missing += std::string(missing.empty() ? "" : ", ") + symbol;
  fn = reinterpret_cast<Fn>(p);
}

Api load() {
  Api api;
  std::vector<std::string> candidates;
  // $CKPT_CUFILE_LIBRARY, when set, is the only place tried: the user said which library.
  if (const char* env = std::getenv("CKPT_CUFILE_LIBRARY"); env && *env) {
    candidates.push_back(env);
  } else {
#ifdef CKPT_CUFILE_LIBRARY_PATH
    candidates.push_back(CKPT_CUFILE_LIBRARY_PATH);
#endif
    candidates.push_back("libcufile.so.0");
  }
  void* lib = nullptr;
  std::string tried;
  for (const auto& c : candidates) {
    lib = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib) {
      api.library = c;
      break;
    }
    const char* why = dlerror();
    tried += std::string(tried.empty() ? "" : "; ") + (why ? why : c);
  }
  if (!lib) {
    api.error = "libcufile not found (" + tried + "; CKPT_CUFILE_LIBRARY names it)";
    return api;
  }
  std::string missing;
  resolve(lib, api.driver_open, "cuFileDriverOpen", nullptr, missing);
  // cufile.h maps cuFileDriverClose to cuFileDriverClose_v2 where the library has both.
  resolve(lib, api.driver_close, "cuFileDriverClose_v2", "cuFileDriverClose", missing);
  resolve(lib, api.handle_register, "cuFileHandleRegister", nullptr, missing);
  resolve(lib, api.handle_deregister, "cuFileHandleDeregister", nullptr, missing);
  resolve(lib, api.buf_register, "cuFileBufRegister", nullptr, missing);
  resolve(lib, api.buf_deregister, "cuFileBufDeregister", nullptr, missing);
  resolve(lib, api.read, "cuFileRead", nullptr, missing);
  if (!missing.empty()) api.error = api.library + " lacks " + missing;
  return api;
}

}  // namespace

const Api& api() {
  static std::once_flag once;
  static Api loaded;
  std::call_once(once, [] { loaded = load(); });
  return loaded;
}

std::string op_error_name(int err) {
  for (const auto& e : kErrorNames)
    if (e.value == err) return e.name;
  return "cuFile error " + std::to_string(err);
}

}  // namespace cufile

bool nvidia_fs_loaded() {
  std::error_code ec;
  return std::filesystem::is_directory("/sys/module/nvidia_fs", ec);
}

GdsDriver::GdsDriver() {
  const cufile::Api& a = cufile::api();
  if (!a.loaded()) fail(Errc::kIo, "", "", a.error);
  nvidia_fs_ = nvidia_fs_loaded();
  CKPT_CUFILE(a.driver_open());
}

GdsDriver::~GdsDriver() { (void)cufile::api().driver_close(); }

GdsFile::GdsFile(const std::string& path, bool direct) : file_(File::open_read(path)) {
  if (direct) {
    direct_fd_ = ::open(path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
    if (direct_fd_ < 0 && errno != EINVAL) fail_errno(path, "cannot open for direct reads");
  }
  cufile::Descr d{};
  d.type = cufile::kHandleTypeOpaqueFd;
  d.handle.fd = direct_fd_ >= 0 ? direct_fd_ : file_.fd();
  try {
    CKPT_CUFILE(cufile::api().handle_register(&handle_, &d));
  } catch (const Error& e) {
    if (direct_fd_ >= 0) ::close(direct_fd_);  // no destructor runs for a constructor that throws
    fail(Errc::kIo, path, "", e.rule());       // the file the registration refused, for the fallback reason
  }
}

GdsFile::~GdsFile() {
  if (handle_) cufile::api().handle_deregister(handle_);
  if (direct_fd_ >= 0) ::close(direct_fd_);
}

void GdsFile::read(void* base, uint64_t n, uint64_t offset, uint64_t dev_offset) const {
  const ssize_t got = cufile::api().read(handle_, base, n, static_cast<off_t>(offset), static_cast<off_t>(dev_offset));
  if (got < 0) {
    // -1 with errno for a system error; a negated CUfileOpError for cuFile's own.
    const int e = static_cast<int>(-got);
    fail(Errc::kIo, path(), "",
         "cuFileRead at offset " + std::to_string(offset) + ": " +
             (e > cufile::kBaseError ? cufile::op_error_name(e) : std::string(std::strerror(errno))));
  }
  if (static_cast<uint64_t>(got) != n)
    fail(Errc::kIo, path(), "",
         "cuFileRead at offset " + std::to_string(offset) + " read " + std::to_string(got) + " of " +
             std::to_string(n) + " bytes (the file shrank?)");
}

GdsBuffer::GdsBuffer(void* base, uint64_t n) {
  CKPT_CUFILE(cufile::api().buf_register(base, n, 0));
  base_ = base;
}

GdsBuffer::~GdsBuffer() {
  if (base_) (void)cufile::api().buf_deregister(base_);
}

}  // namespace ckpt::cuda
