// coyote-mpi: cSched, the per-vFPGA task scheduler of the background service (Coyote v0.2.x compatible).
#pragma once

#include <syslog.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <coyote/bFunc.hpp>
#include <coyote/cRcnfg.hpp>
#include <coyote/cTask.hpp>

namespace coyote {

/// Order in which queued tasks run (coyote-mpi names; stock Coyote has the first two, chosen by `reorder`).
enum class SchedPolicy {
    fcfs,    ///< first come, first served
    reorder, ///< run every queued task of the loaded bitstream before reconfiguring (stock default)
    priority ///< highest cTask priority first, then like reorder
};

/// One scheduler per (device, vFPGA): runs submitted tasks on its own thread, reconfiguring the vFPGA with the
/// bitstream of each task's function when it differs from the loaded one, or when the previous task's function
/// failed (the app may be left mid-stream). Thread-safe.
class cSched : public cRcnfg {
public:
    /// The scheduler of vFPGA `vfid` of `device`, created on first use (later calls return the same one and
    /// ignore `reorder` and `current_bitstream`). `current_bitstream`: path of the app already loaded, if any.
    static cSched* getInstance(int32_t vfid, uint32_t device = 0, bool reorder = true,
                               std::string current_bitstream = "");

    ~cSched() override;

    /// Starts the scheduling thread (idempotent).
    void start();
    /// Stops the thread; queued tasks complete with TaskError::stopped.
    void stop();
    /// Queues `task`; false when its function is unknown, its id is taken or the scheduler is stopped.
    bool addTask(std::unique_ptr<cTask> task);
    /// coyote-mpi: runs `task` in the calling thread when nothing is queued or running and its bitstream is loaded
    /// (any policy would pick it next, with no reconfiguration), saving the hand-off to the scheduler's thread;
    /// returns false (and leaves `task` alone) otherwise.
    /// The task completes before the call returns; its completion callback is not called.
    bool runIfIdle(std::unique_ptr<cTask>& task);
    /// Whether task `tid` has completed (false when unknown).
    bool isTaskCompleted(int32_t tid);
    /// Task `tid`, or nullptr.
    cTask* getTask(int32_t tid);
    bool isFunctionRegistered(int32_t fid);
    /// Function `fid`, or nullptr.
    bFunc* getFunction(int32_t fid);
    /// Registers `fn` and reads its bitstream: 0 ok, 1 bitstream unreadable (missing, empty, bad format),
    /// 2 function id already registered.
    int addFunction(std::unique_ptr<bFunc> fn);

    // ---- coyote-mpi extensions ----
    /// Forgets completed task `tid` (the service calls it once the result is sent); false if unknown or running.
    bool releaseTask(int32_t tid);
    /// Waits until some task completes after `seen` completions or `max` passes; returns the completion count.
    uint64_t waitCompletions(uint64_t seen, std::chrono::milliseconds max);
    /// Changes the policy (takes effect at the next pick); a value outside the enum is a coyote::Error.
    void setPolicy(SchedPolicy p);
    SchedPolicy getPolicy() const;
    /// Application reconfigurations done by this scheduler.
    uint64_t getAppReconfigurations() const;
    int32_t getVfid() const { return vfid_; }

    /// cRcnfg's loads through the scheduler: as there, and the scheduler then forgets which application is
    /// loaded, so that its next task loads its own (a load behind its back made tasks run on the wrong one).
    void reconfigureShell(std::string bitstream_path);
    void reconfigureApp(std::string bitstream_path, int vfid);
    void reconfigureAppBytes(const std::vector<char>& bitstream, int vfid, const std::string& origin);

private:
    /// After a load the scheduler did not make: its next task reloads its bitstream.
    void forget_loaded_app();
    cSched(int32_t vfid, uint32_t device, bool reorder, std::string current_bitstream);
    void schedule();
    cTask* pick_locked();
    void run_task(cTask* task, bFunc* fn);
    /// Reconfigures if needed, runs `task` and completes it; `lk` is held on entry and on return, not meanwhile.
    void execute(std::unique_lock<std::mutex>& lk, cTask* task);

    int32_t vfid_;
    SchedPolicy policy_;
    std::map<int32_t, std::unique_ptr<bFunc>> functions_;
    std::map<int32_t, std::vector<char>> bitstreams_; // fid -> file contents
    std::map<std::string, int32_t> bitstream_ids_;    // path -> small id
    std::map<int32_t, int32_t> fid_bitstream_;        // fid -> bitstream id
    std::map<int32_t, std::unique_ptr<cTask>> tasks_;
    struct Queued {
        cTask* task;
        int32_t bitstream; ///< id of the task's bitstream
    };
    std::deque<Queued> queue_;
    int32_t current_id_ = -1; ///< id of current_bitstream_, -1 when unknown
    static constexpr uint32_t k_max_passes = 64; ///< reorder: picks in a row that may pass the oldest task
    uint32_t passes_ = 0;                        ///< picks in a row that passed it
    mutable std::mutex mtx_;
    std::condition_variable cv_;      // queue changes, stop
    std::condition_variable done_cv_; // completions
    uint64_t completions_ = 0;
    uint64_t app_reconfigs_ = 0;
    bool running_ = false;
    bool busy_ = false; ///< a task runs (on the scheduler's thread or in runIfIdle)
    std::string current_bitstream_;
    std::thread thread_;
};

}  // namespace coyote
