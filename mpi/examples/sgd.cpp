// coyote-mpi example: data-parallel gradient descent on synthetic linear regression. Every rank holds a shard
// of the samples, computes its gradient, and the gradients are summed with allreduce over FPGA RDMA; rank 0
// then repeats the whole training alone on all shards and checks that both give the same model.
//
//   mpirun -np 4 [--oversubscribe --allow-run-as-root] ./coyote_mpi_sgd [--steps 200] [--samples 4096] [--dim 256]
#include <coyote/mpi/collectives.hpp>
#include <coyote/mpi/mpi.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "example_support.hpp"

using namespace coyote;
using namespace coyote::mpi;
using namespace coyote::mpi::examples;

namespace {

struct Shard {
    std::vector<double> x; ///< samples x dim, row-major
    std::vector<double> y;
};

/// Deterministic shard `r`: y = x . w_true + noise.
Shard make_shard(int r, int samples, int dim, const std::vector<double>& w_true) {
    std::mt19937_64 g(1000 + static_cast<uint64_t>(r));
    std::normal_distribution<double> nd(0.0, 1.0);
    Shard s;
    s.x.resize(static_cast<std::size_t>(samples) * static_cast<std::size_t>(dim));
    s.y.resize(static_cast<std::size_t>(samples));
    for (int i = 0; i < samples; ++i) {
        double dot = 0;
        for (int j = 0; j < dim; ++j) {
            const double v = nd(g);
            s.x[static_cast<std::size_t>(i) * static_cast<std::size_t>(dim) + static_cast<std::size_t>(j)] = v;
            dot += v * w_true[static_cast<std::size_t>(j)];
        }
        s.y[static_cast<std::size_t>(i)] = dot + 0.01 * nd(g);
    }
    return s;
}

/// Adds the gradient of 0.5 * sum (x.w - y)^2 over `s` to `grad`; returns the loss.
double accumulate_gradient(const Shard& s, const std::vector<double>& w, std::vector<double>& grad) {
    const std::size_t dim = w.size();
    double loss = 0;
    for (std::size_t i = 0; i < s.y.size(); ++i) {
        const double* row = &s.x[i * dim];
        double e = -s.y[i];
        for (std::size_t j = 0; j < dim; ++j) e += row[j] * w[j];
        loss += 0.5 * e * e;
        for (std::size_t j = 0; j < dim; ++j) grad[j] += e * row[j];
    }
    return loss;
}

int run(int argc, char** argv) {
    const Options opts(argc, argv, "sgd", {"--steps", "--samples", "--dim"});
    const int steps = opts.count("--steps", 200);
    const int samples = opts.count("--samples", 4096);
    const int dim = opts.count("--dim", 256);
    Communicator comm;
    Collectives coll(comm, select_device(comm));
    const int n = comm.size();
    const int me = comm.rank();
    const auto udim = static_cast<std::size_t>(dim);
    std::vector<double> w_true(udim);
    for (std::size_t j = 0; j < udim; ++j) w_true[j] = std::sin(static_cast<double>(j) * 0.37);
    const double lr = 0.5 / (static_cast<double>(samples) * n);

    // Distributed: local gradient, allreduce (sum) over RDMA, identical update on every rank.
    const Shard mine = make_shard(me, samples, dim, w_true);
    std::vector<double> w(udim, 0.0), grad(udim);
    std::vector<double> loss_msg(udim + 1);
    double loss = 0;
    for (int s = 0; s < steps; ++s) {
        std::fill(grad.begin(), grad.end(), 0.0);
        const double l = accumulate_gradient(mine, w, grad);
        std::copy(grad.begin(), grad.end(), loss_msg.begin());
        loss_msg[udim] = l;
        coll.allreduce(MPI_IN_PLACE, loss_msg.data(), loss_msg.size(), Datatype::float64, Op::sum);
        for (std::size_t j = 0; j < udim; ++j) w[j] -= lr * loss_msg[j];
        loss = loss_msg[udim];
        if (me == 0 && (s % 50 == 0 || s == steps - 1))
            std::printf("step %4d  loss %.6e\n", s, loss / (static_cast<double>(samples) * n));
    }
    // Every rank holds the same model.
    std::vector<double> w0(w);
    coll.broadcast(w0.data(), udim, Datatype::float64, 0);
    int same = w0 == w ? 1 : 0;
    int all_same = 0;
    check_mpi(MPI_Allreduce(&same, &all_same, 1, MPI_INT, MPI_MIN, comm.get()), "MPI_Allreduce");

    int ok = all_same;
    if (me == 0) {
        // Single-rank reference: the same steps over all shards, gradients summed locally.
        std::vector<Shard> shards;
        for (int r = 0; r < n; ++r) shards.push_back(make_shard(r, samples, dim, w_true));
        std::vector<double> wr(udim, 0.0), gr(udim);
        for (int s = 0; s < steps; ++s) {
            std::fill(gr.begin(), gr.end(), 0.0);
            for (const auto& sh : shards) {
                std::vector<double> part(udim, 0.0);
                (void)accumulate_gradient(sh, wr, part);
                for (std::size_t j = 0; j < udim; ++j) gr[j] += part[j];
            }
            for (std::size_t j = 0; j < udim; ++j) wr[j] -= lr * gr[j];
        }
        double diff = 0, err = 0;
        for (std::size_t j = 0; j < udim; ++j) {
            diff = std::max(diff, std::fabs(w[j] - wr[j]));
            err = std::max(err, std::fabs(w[j] - w_true[j]));
        }
        // The sums are reduced in another order than the reference's: agreement to rounding level. How close the
        // model came to w_true depends on --steps, not on the collectives: reported, not a verdict.
        ok = ok && diff <= 1e-9;
        std::printf("ranks %d, %d samples each, dim %d, %d steps\n", n, samples, dim, steps);
        std::printf("max |w_distributed - w_single_rank| = %.3e (tolerance 1e-9)\n", diff);
        std::printf("max |w - w_true| = %.3e (%s)\n", err,
                    err < 0.05 ? "converged" : "not converged yet: more --steps");
        std::printf("identical model on every rank: %s\n", all_same ? "yes" : "NO");
        std::printf("Result: %s\n", ok ? "distributed training matches the single-rank computation" : "MISMATCH");
    }
    check_mpi(MPI_Bcast(&ok, 1, MPI_INT, 0, comm.get()), "MPI_Bcast");
    return ok ? 0 : 1;
}

}  // namespace

constexpr const char* k_usage =
    "usage: mpirun -np <ranks> coyote_mpi_sgd [--steps 200] [--samples 4096] [--dim 256]\n"
    "  --steps: gradient steps; --samples: samples per rank; --dim: model size (each a whole number >= 1)\n"
    "  Exit status 0 when the distributed model equals rank 0's single-rank computation.\n";

int main(int argc, char** argv) { return run_example(argc, argv, "sgd", k_usage, run); }
