// Plan files on disk: whole-file read, and atomic write (temporary file in the same directory + rename), so a
// reader never sees a half-written plan and a failed write leaves nothing behind.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "src/common/check.h"
#include "src/plan/plan_model.h"

namespace kiln::plan {
namespace {

/// Closes a descriptor on scope exit unless released.
class Fd {
public:
    explicit Fd(int fd) : fd_(fd) {}
    ~Fd() {
        if (fd_ >= 0) ::close(fd_);
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    int get() const { return fd_; }
    /// Closes now and reports close()'s error (a deferred write error on some file systems).
    int close() {
        int rc = ::close(fd_);
        fd_ = -1;
        return rc;
    }

private:
    int fd_;
};

}  // namespace

void write_file_atomic(const std::string& path, const std::vector<uint8_t>& bytes) {
    const std::string tmp = path + ".tmp." + std::to_string(::getpid());
    auto fail = [&](const char* step, int err) {
        ::unlink(tmp.c_str());
        KILN_FAIL(kIoError, "cannot write '", path, "': ", step, ": ", std::strerror(err));
    };
    Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (fd.get() < 0) {
        int err = errno;
        KILN_FAIL(kIoError, "cannot write '", path, "': cannot create '", tmp, "': ", std::strerror(err));
    }
    size_t done = 0;
    while (done < bytes.size()) {
        ssize_t n = ::write(fd.get(), bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) fail("write failed", n < 0 ? errno : ENOSPC);
        done += static_cast<size_t>(n);
    }
    if (fd.close() != 0) fail("close failed", errno);
    if (::rename(tmp.c_str(), path.c_str()) != 0) fail("rename failed", errno);
}

std::vector<uint8_t> read_file(const std::string& path) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) {
        int err = errno;
        KILN_FAIL(kIoError, "cannot open '", path, "': ", std::strerror(err));
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) {
        int err = errno;
        KILN_FAIL(kIoError, "cannot open '", path, "': ", std::strerror(err));
    }
    if (S_ISDIR(st.st_mode)) KILN_FAIL(kIoError, "cannot open '", path, "': ", std::strerror(EISDIR));

    // Read straight into a buffer of the file's size; a file that grows meanwhile (or a pipe) is read to its end.
    std::vector<uint8_t> out(S_ISREG(st.st_mode) && st.st_size > 0 ? static_cast<size_t>(st.st_size) : 0);
    size_t len = 0;
    uint8_t chunk[1 << 16];
    for (;;) {
        const bool into_out = len < out.size();
        uint8_t* dst = into_out ? out.data() + len : chunk;
        size_t room = into_out ? out.size() - len : sizeof(chunk);
        ssize_t n = ::read(fd.get(), dst, room);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int err = errno;
            KILN_FAIL(kIoError, "cannot read '", path, "': ", std::strerror(err));
        }
        if (n == 0) break;
        if (into_out) {
            len += static_cast<size_t>(n);
        } else {
            out.insert(out.end(), chunk, chunk + n);
            len = out.size();
        }
    }
    out.resize(len);
    return out;
}

}  // namespace kiln::plan
