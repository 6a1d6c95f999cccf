// coyote-mpi: cSched, one scheduler per vFPGA: queue, policy, reconfiguration before a task, completion.
#include <coyote/cSched.hpp>

#include <algorithm>
#include <exception>
#include <map>

#include "service/service_log.hpp"

namespace coyote {

namespace {

std::mutex g_instances_mtx;
std::map<std::pair<uint32_t, int32_t>, std::unique_ptr<cSched>>& instances() {
    static std::map<std::pair<uint32_t, int32_t>, std::unique_ptr<cSched>> m;
    return m;
}

}  // namespace

cSched* cSched::getInstance(int32_t vfid, uint32_t device, bool reorder, std::string current_bitstream) {
    std::lock_guard lk(g_instances_mtx);
    auto& slot = instances()[{device, vfid}];
    if (!slot) slot.reset(new cSched(vfid, device, reorder, std::move(current_bitstream)));
    return slot.get();
}

cSched::cSched(int32_t vfid, uint32_t device, bool reorder, std::string current_bitstream)
    : cRcnfg(device), vfid_(vfid), policy_(reorder ? SchedPolicy::reorder : SchedPolicy::fcfs),
      current_bitstream_(std::move(current_bitstream)) {}

cSched::~cSched() { stop(); }

void cSched::forget_loaded_app() {
    std::lock_guard lk(mtx_);
    current_bitstream_.clear();
    current_id_ = -1;
}

void cSched::reconfigureShell(std::string bitstream_path) {
    cRcnfg::reconfigureShell(std::move(bitstream_path));
    forget_loaded_app(); // a shell bitstream may carry every vFPGA's application
}

void cSched::reconfigureApp(std::string bitstream_path, int vfid) {
    cRcnfg::reconfigureApp(std::move(bitstream_path), vfid);
    if (vfid == vfid_) forget_loaded_app();
}

void cSched::reconfigureAppBytes(const std::vector<char>& bitstream, int vfid, const std::string& origin) {
    cRcnfg::reconfigureAppBytes(bitstream, vfid, origin);
    if (vfid == vfid_) forget_loaded_app();
}

void cSched::start() {
    std::unique_lock lk(mtx_);
    if (running_) return;
    if (thread_.joinable()) {
        // A stop() from inside a task left the scheduler thread to end after it.
        if (thread_.get_id() == std::this_thread::get_id())
            throw_error(Errc::invalid_argument, "cSched::start",
                        "called from a task of this scheduler after stop() from inside it; start it from another thread");
        std::thread ending = std::move(thread_);
        lk.unlock();
        ending.join();
        lk.lock();
        if (running_ || thread_.joinable()) return; // another start() won meanwhile
    }
    running_ = true;
    thread_ = std::thread([this] { schedule(); });
}

void cSched::stop() {
    std::thread joining; // taken by one caller only: concurrent stops must not both join it
    {
        std::lock_guard lk(mtx_);
        if (!running_ && !thread_.joinable()) return;
        running_ = false;
        if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) joining = std::move(thread_);
    }
    cv_.notify_all();
    if (joining.joinable()) joining.join();
    std::lock_guard lk(mtx_);
    for (const Queued& q : queue_) {
        q.task->setRetCode(static_cast<int32_t>(TaskError::stopped));
        q.task->setCompleted(true);
        ++completions_;
    }
    queue_.clear();
    done_cv_.notify_all();
}

bool cSched::addTask(std::unique_ptr<cTask> task) {
    if (!task) return false;
    {
        std::lock_guard lk(mtx_);
        const int32_t tid = task->getTid();
        if (!running_ || functions_.count(task->getFid()) == 0 || tasks_.count(tid) != 0) return false;
        queue_.push_back({task.get(), fid_bitstream_.at(task->getFid())});
        tasks_.emplace(tid, std::move(task));
    }
    cv_.notify_one();
    return true;
}

bool cSched::runIfIdle(std::unique_ptr<cTask>& task) {
    if (!task) return false;
    std::unique_lock lk(mtx_);
    const int32_t tid = task->getTid();
    if (!running_ || busy_ || !queue_.empty() || functions_.count(task->getFid()) == 0 || tasks_.count(tid) != 0)
        return false;
    // Only without a reconfiguration: tasks that need one queue, so the policy can still order those that follow.
    if (fid_bitstream_.at(task->getFid()) != current_id_) return false;
    task->setCompletionCallback(nullptr);
    cTask* t = task.get();
    tasks_.emplace(tid, std::move(task));
    busy_ = true;
    execute(lk, t);
    busy_ = false;
    lk.unlock();
    cv_.notify_one(); // tasks queued meanwhile
    return true;
}

bool cSched::isTaskCompleted(int32_t tid) {
    std::lock_guard lk(mtx_);
    auto it = tasks_.find(tid);
    return it != tasks_.end() && it->second->isCompleted();
}

cTask* cSched::getTask(int32_t tid) {
    std::lock_guard lk(mtx_);
    auto it = tasks_.find(tid);
    return it == tasks_.end() ? nullptr : it->second.get();
}

bool cSched::releaseTask(int32_t tid) {
    std::lock_guard lk(mtx_);
    auto it = tasks_.find(tid);
    if (it == tasks_.end() || !it->second->isCompleted()) return false;
    tasks_.erase(it);
    return true;
}

bool cSched::isFunctionRegistered(int32_t fid) {
    std::lock_guard lk(mtx_);
    return functions_.count(fid) != 0;
}

bFunc* cSched::getFunction(int32_t fid) {
    std::lock_guard lk(mtx_);
    auto it = functions_.find(fid);
    return it == functions_.end() ? nullptr : it->second.get();
}

int cSched::addFunction(std::unique_ptr<bFunc> fn) {
    if (!fn) return 1;
    const int32_t fid = fn->getFid();
    if (isFunctionRegistered(fid)) {
        detail::service::log(LOG_WARNING, "function %d is already registered", fid);
        return 2;
    }
    std::vector<char> bits;
    try {
        bits = readBitstreamFile(fn->getBitstreamPath());
    } catch (const std::exception& e) {
        detail::service::log(LOG_ERR, "function %d: %s", fid, e.what());
        return 1;
    }
    std::lock_guard lk(mtx_);
    if (functions_.count(fid) != 0) return 2;
    auto& stored = bitstreams_[fid];
    stored = std::move(bits);
    fn->setBitstreamPointer({stored.data(), static_cast<uint32_t>(stored.size())});
    const auto id = bitstream_ids_.emplace(fn->getBitstreamPath(), static_cast<int32_t>(bitstream_ids_.size())).first;
    fid_bitstream_[fid] = id->second;
    if (id->first == current_bitstream_) current_id_ = id->second;
    functions_.emplace(fid, std::move(fn));
    detail::service::log(LOG_NOTICE, "added function %d", fid);
    return 0;
}

uint64_t cSched::waitCompletions(uint64_t seen, std::chrono::milliseconds max) {
    std::unique_lock lk(mtx_);
    done_cv_.wait_for(lk, max, [&] { return completions_ != seen; });
    return completions_;
}

void cSched::setPolicy(SchedPolicy p) {
    if (p != SchedPolicy::fcfs && p != SchedPolicy::reorder && p != SchedPolicy::priority)
        throw_error(Errc::invalid_argument, "cSched::setPolicy",
                    "unknown policy " + std::to_string(static_cast<int>(p)) + " (fcfs, reorder or priority)");
    std::lock_guard lk(mtx_);
    policy_ = p;
}

SchedPolicy cSched::getPolicy() const {
    std::lock_guard lk(mtx_);
    return policy_;
}

uint64_t cSched::getAppReconfigurations() const {
    std::lock_guard lk(mtx_);
    return app_reconfigs_;
}

cTask* cSched::pick_locked() {
    auto it = queue_.begin();
    auto loaded_first = [&](auto from, auto pred) {
        auto l = std::find_if(from, queue_.end(), [&](const Queued& q) { return pred(q) && q.bitstream == current_id_; });
        return l != queue_.end() ? l : std::find_if(from, queue_.end(), pred);
    };
    if (policy_ == SchedPolicy::priority) {
        int32_t best = it->task->getPriority();
        for (const Queued& q : queue_) best = std::max(best, q.task->getPriority());
        it = loaded_first(queue_.begin(), [&](const Queued& q) { return q.task->getPriority() == best; });
    } else if (policy_ == SchedPolicy::reorder) {
        // Tasks of the loaded bitstream pass the oldest task at most k_max_passes times in a row: a stream of them
        // must not starve it (it waited without bound under two busy clients).
        it = passes_ < k_max_passes ? loaded_first(queue_.begin(), [](const Queued&) { return true; }) : queue_.begin();
        passes_ = it == queue_.begin() ? 0 : passes_ + 1;
    }
    cTask* task = it->task;
    queue_.erase(it);
    return task;
}

void cSched::run_task(cTask* task, bFunc* fn) {
    try {
        task->setRetVal(fn->run(task->getCThread(), task->getArgs()));
        task->setRetCode(static_cast<int32_t>(TaskError::none));
    } catch (const std::invalid_argument& e) {
        detail::service::log(LOG_WARNING, "task %d of function %d: %s", task->getTid(), task->getFid(), e.what());
        task->setRetCode(static_cast<int32_t>(TaskError::bad_arguments));
    } catch (const std::exception& e) {
        detail::service::log(LOG_WARNING, "task %d of function %d failed: %s", task->getTid(), task->getFid(), e.what());
        task->setRetCode(static_cast<int32_t>(TaskError::failed));
    } catch (...) {
        detail::service::log(LOG_WARNING, "task %d of function %d failed with an unknown exception", task->getTid(), task->getFid());
        task->setRetCode(static_cast<int32_t>(TaskError::failed));
    }
}

void cSched::execute(std::unique_lock<std::mutex>& lk, cTask* task) {
    bFunc* fn = functions_.at(task->getFid()).get();
    const std::string path = fn->getBitstreamPath();
    const std::vector<char>* bits = &bitstreams_.at(task->getFid());
    const bool reconfigure = path != current_bitstream_;
    lk.unlock();
    bool loaded = true;
    if (reconfigure) {
        try {
            cRcnfg::reconfigureAppBytes(*bits, vfid_, path);
        } catch (const std::exception& e) {
            detail::service::log(LOG_ERR, "reconfiguration of vFPGA %d with %s failed: %s", vfid_, path.c_str(), e.what());
            task->setRetCode(static_cast<int32_t>(TaskError::failed));
            loaded = false;
        }
    }
    if (loaded) run_task(task, fn);
    // A function that failed may have left the app mid-stream (half of its input fed, say): the next task gets
    // a freshly loaded one.
    const bool failed = task->getRetCode() == static_cast<int32_t>(TaskError::failed);
    lk.lock();
    if (reconfigure && loaded) {
        current_bitstream_ = path;
        current_id_ = fid_bitstream_.at(task->getFid());
        ++app_reconfigs_;
    }
    if ((reconfigure && !loaded) || failed) {
        current_bitstream_.clear();
        current_id_ = -1;
    }
    task->setCompleted(true);
    ++completions_;
    done_cv_.notify_all();
}

void cSched::schedule() {
    std::unique_lock lk(mtx_);
    while (true) {
        cv_.wait(lk, [&] { return !running_ || (!queue_.empty() && !busy_); });
        if (!running_) return;
        cTask* task = pick_locked();
        busy_ = true;
        execute(lk, task);
        busy_ = false;
    }
}

}  // namespace coyote
