// Objects at names of ours in shared directories (/tmp, /dev/shm): created owner-only whatever the umask; another
// user's file, a symbolic link or a FIFO put at the name is refused, naming the problem, and never blocks.
// The cases with another user's object need root (to give a file to nobody); they are skipped otherwise.
#include <gtest/gtest.h>

#include <coyote/error.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "detail/handles.hpp"
#include "support/child.hpp"

namespace {

using coyote::detail::Fd;
using coyote::detail::open_own_file;
using coyote::detail::ShmSegment;

constexpr uid_t k_nobody = 65534;

std::string unique(const std::string& what) {
    return "coyote-handles-test-" + what + "-" + std::to_string(::getpid());
}

/// The message of the coyote::Error `f` throws; empty when it throws none.
template <class F>
std::string error_text(F&& f) {
    try {
        f();
    } catch (const coyote::Error& e) {
        return e.what();
    }
    return {};
}

/// Removes a file at `path` on scope exit.
struct Unlink {
    std::string path;
    ~Unlink() { (void)::unlink(path.c_str()); }
};

TEST(OpenOwnFile, CreatesTheFileOwnerOnlyWhateverTheUmask) {
    const Unlink f{"/tmp/" + unique("fresh")};
    const mode_t old = ::umask(0);
    const Fd fd = open_own_file(f.path, "test");
    ::umask(old);
    struct stat st {};
    ASSERT_EQ(::fstat(fd.get(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    EXPECT_EQ(::fcntl(fd.get(), F_GETFL) & O_NONBLOCK, 0) << "the descriptor is handed back in blocking mode";
}

TEST(OpenOwnFile, RefusesAnotherUsersFile) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to give a file to another user";
    const Unlink f{"/tmp/" + unique("foreign")};
    {
        const Fd fd(::open(f.path.c_str(), O_RDWR | O_CREAT | O_EXCL, 0666));
        ASSERT_TRUE(fd);
        ASSERT_EQ(::fchmod(fd.get(), 0666), 0);
        ASSERT_EQ(::fchown(fd.get(), k_nobody, static_cast<gid_t>(-1)), 0);
    }
    const std::string msg = error_text([&] { (void)open_own_file(f.path, "test"); });
    EXPECT_NE(msg.find("belongs to uid 65534"), std::string::npos) << msg;
    EXPECT_NE(msg.find(f.path), std::string::npos) << msg;
}

TEST(OpenOwnFile, NeverFollowsASymbolicLink) {
    const Unlink target{"/tmp/" + unique("target")};
    const Unlink link{"/tmp/" + unique("link")};
    ASSERT_EQ(::symlink(target.path.c_str(), link.path.c_str()), 0);
    const std::string msg = error_text([&] { (void)open_own_file(link.path, "test"); });
    EXPECT_NE(msg.find("symbolic link"), std::string::npos) << msg;
    struct stat st {};
    EXPECT_NE(::stat(target.path.c_str(), &st), 0) << "the link's target was created";
}

TEST(OpenOwnFile, RefusesAFifoWithoutBlocking) {
    const Unlink f{"/tmp/" + unique("fifo")};
    ASSERT_EQ(::mkfifo(f.path.c_str(), 0600), 0);
    coyote_test::Child child([&] {
        const std::string msg = error_text([&] { (void)open_own_file(f.path, "test"); });
        return msg.find("a FIFO") != std::string::npos ? 0 : 1;
    }, 10);
    EXPECT_EQ(child.wait(std::chrono::seconds(20)), 0) << "blocked on the FIFO (-1 / 142) or did not refuse it (1)";
}

/// A segment at `name` given to nobody, mode 0666, as another user could leave it for us.
void plant_foreign_segment(const std::string& name) {
    const Fd fd(::shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL, 0666));
    ASSERT_TRUE(fd) << name;
    ASSERT_EQ(::ftruncate(fd.get(), 4096), 0);
    ASSERT_EQ(::fchmod(fd.get(), 0666), 0);
    ASSERT_EQ(::fchown(fd.get(), k_nobody, static_cast<gid_t>(-1)), 0);
}

TEST(ShmSegment, OpenRefusesAnotherUsersSegment) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to give a segment to another user";
    const std::string name = "/" + unique("foreign-seg");
    plant_foreign_segment(name);
    const std::string msg = error_text([&] { (void)ShmSegment::open(name); });
    ::shm_unlink(name.c_str());
    EXPECT_NE(msg.find("belongs to uid 65534"), std::string::npos) << msg;
}

TEST(ShmSegment, CreateNamesTheOwnerOfWhatIsInTheWay) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to give a segment to another user";
    const std::string name = "/" + unique("in-the-way");
    plant_foreign_segment(name);
    const std::string msg = error_text([&] { (void)ShmSegment::create(name, 4096); });
    struct stat st {};
    const bool kept = ::stat(("/dev/shm" + name).c_str(), &st) == 0 && st.st_uid == k_nobody;
    ::shm_unlink(name.c_str());
    EXPECT_NE(msg.find("uid 65534 (another user)"), std::string::npos) << msg;
    EXPECT_TRUE(kept) << "the other user's segment was touched";
}

TEST(ShmSegment, CreatesOwnerOnlyWhateverTheUmask) {
    const std::string name = "/" + unique("mine");
    const mode_t old = ::umask(0);
    {
        const ShmSegment seg = ShmSegment::create(name, 4096);
        ::umask(old);
        struct stat st {};
        ASSERT_EQ(::stat(("/dev/shm" + name).c_str(), &st), 0);
        EXPECT_EQ(st.st_mode & 0777, 0600u);
        const ShmSegment again = ShmSegment::open(name); // our own opens
        EXPECT_EQ(again.size(), 4096u);
    }
    ::umask(old);
}

}  // namespace
