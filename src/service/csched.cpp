// coyote-mpi: cSched, one scheduler per vFPGA: queue, policy, reconfiguration before a task, completion.
#include <coyote/cSched.hpp>

#include <algorithm>
#include <exception>
#include <map>

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

void cSched::start() {
    std::lock_guard lk(mtx_);
    if (running_) return;
    running_ = true;
    thread_ = std::thread([this] { schedule(); });
}

void cSched::stop() {
    {
        std::lock_guard lk(mtx_);
        if (!running_ && !thread_.joinable()) return;
        running_ = false;
    }
    cv_.notify_all();
    if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
    std::lock_guard lk(mtx_);
    for (int32_t tid : queue_) {
        tasks_[tid]->setRetCode(static_cast<int32_t>(TaskError::stopped));
        tasks_[tid]->setCompleted(true);
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
        tasks_.emplace(tid, std::move(task));
        queue_.push_back(tid);
    }
    cv_.notify_one();
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
        syslog(LOG_WARNING, "function %d is already registered", fid);
        return 2;
    }
    std::vector<char> bits;
    try {
        bits = readBitstreamFile(fn->getBitstreamPath());
    } catch (const std::exception& e) {
        syslog(LOG_ERR, "function %d: %s", fid, e.what());
        return 1;
    }
    std::lock_guard lk(mtx_);
    if (functions_.count(fid) != 0) return 2;
    auto& stored = bitstreams_[fid];
    stored = std::move(bits);
    fn->setBitstreamPointer({stored.data(), static_cast<uint32_t>(stored.size())});
    functions_.emplace(fid, std::move(fn));
    syslog(LOG_NOTICE, "added function %d", fid);
    return 0;
}

uint64_t cSched::waitCompletions(uint64_t seen, std::chrono::milliseconds max) {
    std::unique_lock lk(mtx_);
    done_cv_.wait_for(lk, max, [&] { return completions_ != seen; });
    return completions_;
}

void cSched::setPolicy(SchedPolicy p) {
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
    auto path_of = [&](int32_t tid) { return functions_.at(tasks_.at(tid)->getFid())->getBitstreamPath(); };
    auto it = queue_.begin();
    if (policy_ == SchedPolicy::priority) {
        int32_t best = tasks_.at(*it)->getPriority();
        for (auto j = queue_.begin(); j != queue_.end(); ++j) best = std::max(best, tasks_.at(*j)->getPriority());
        auto loaded = std::find_if(queue_.begin(), queue_.end(), [&](int32_t t) {
            return tasks_.at(t)->getPriority() == best && path_of(t) == current_bitstream_;
        });
        it = loaded != queue_.end() ? loaded : std::find_if(queue_.begin(), queue_.end(), [&](int32_t t) {
            return tasks_.at(t)->getPriority() == best;
        });
    } else if (policy_ == SchedPolicy::reorder) {
        auto loaded = std::find_if(queue_.begin(), queue_.end(), [&](int32_t t) { return path_of(t) == current_bitstream_; });
        if (loaded != queue_.end()) it = loaded;
    }
    cTask* task = tasks_.at(*it).get();
    queue_.erase(it);
    return task;
}

void cSched::run_task(cTask* task, bFunc* fn) {
    try {
        task->setRetVal(fn->run(task->getCThread(), task->getArgs()));
        task->setRetCode(static_cast<int32_t>(TaskError::none));
    } catch (const std::invalid_argument& e) {
        syslog(LOG_WARNING, "task %d of function %d: %s", task->getTid(), task->getFid(), e.what());
        task->setRetCode(static_cast<int32_t>(TaskError::bad_arguments));
    } catch (const std::exception& e) {
        syslog(LOG_WARNING, "task %d of function %d failed: %s", task->getTid(), task->getFid(), e.what());
        task->setRetCode(static_cast<int32_t>(TaskError::failed));
    } catch (...) {
        syslog(LOG_WARNING, "task %d of function %d failed with an unknown exception", task->getTid(), task->getFid());
        task->setRetCode(static_cast<int32_t>(TaskError::failed));
    }
}

void cSched::schedule() {
    std::unique_lock lk(mtx_);
    while (true) {
        cv_.wait(lk, [&] { return !running_ || !queue_.empty(); });
        if (!running_) return;
        cTask* task = pick_locked();
        bFunc* fn = functions_.at(task->getFid()).get();
        const std::string path = fn->getBitstreamPath();
        const std::vector<char>* bits = &bitstreams_.at(task->getFid());
        const bool reconfigure = path != current_bitstream_;
        lk.unlock();
        bool loaded = true;
        if (reconfigure) {
            try {
                reconfigureAppBytes(*bits, vfid_, path);
            } catch (const std::exception& e) {
                syslog(LOG_ERR, "reconfiguration of vFPGA %d with %s failed: %s", vfid_, path.c_str(), e.what());
                task->setRetCode(static_cast<int32_t>(TaskError::failed));
                loaded = false;
            }
        }
        if (loaded) run_task(task, fn);
        lk.lock();
        if (reconfigure && loaded) {
            current_bitstream_ = path;
            ++app_reconfigs_;
        } else if (reconfigure) {
            current_bitstream_.clear();
        }
        task->setCompleted(true);
        ++completions_;
        done_cv_.notify_all();
    }
}

}  // namespace coyote
