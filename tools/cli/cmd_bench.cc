// kiln bench: warm-up, then timed runs; latency min/median/mean/p99 and throughput.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <numeric>

#include "tools/cli/commands.h"
#include "tools/cli/session.h"

namespace kiln::cli {

int cmd_bench(const BenchArgs& a) {
    StderrLogger logger(a.model.verbose ? Severity::kVerbose : Severity::kWarning);
    auto tb = std::chrono::steady_clock::now();
    std::shared_ptr<Engine> engine = load_engine(a.model, logger);
    double build_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - tb).count();
    std::map<std::string, Tensor> inputs = prepare_inputs(*engine, a.inputs);
    auto ctx = engine->create_context();
    ctx->set_num_threads(a.bench.threads);
    for (int i = 0; i < a.bench.warmup; ++i) ctx->run(inputs);
    std::vector<double> ms;
    auto start = std::chrono::steady_clock::now();
    for (;;) {
        auto t0 = std::chrono::steady_clock::now();
        ctx->run(inputs);
        auto t1 = std::chrono::steady_clock::now();
        ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
        if (a.bench.iterations > 0 ? static_cast<int>(ms.size()) >= a.bench.iterations
                                   : std::chrono::duration<double>(t1 - start).count() >= a.bench.duration)
            break;
    }
    if (a.bench.profile > 0) {
        ctx->set_profiling(true);
        ctx->run(inputs);
        ctx->set_profiling(false);
        std::vector<std::pair<std::string, double>> layers = ctx->last_profile();
        double total = 0;
        for (auto& l : layers) total += l.second;
        std::sort(layers.begin(), layers.end(), [](auto& x, auto& y) { return x.second > y.second; });
        std::fprintf(stderr, "profile: %zu layers, %.3f ms in layers\n", layers.size(), total);
        for (size_t i = 0; i < layers.size() && static_cast<int>(i) < a.bench.profile; ++i)
            std::fprintf(stderr, "  %9.3f ms  %5.1f%%  %s\n", layers[i].second, 100 * layers[i].second / total,
                         layers[i].first.c_str());
    }
    std::vector<double> sorted = ms;
    std::sort(sorted.begin(), sorted.end());
    auto pct = [&](double p) { return sorted[std::min(sorted.size() - 1, static_cast<size_t>(p * sorted.size()))]; };
    double mean = std::accumulate(ms.begin(), ms.end(), 0.0) / ms.size();
    double median = sorted.size() % 2 ? sorted[sorted.size() / 2]
                                      : (sorted[sorted.size() / 2 - 1] + sorted[sorted.size() / 2]) / 2;
    int64_t batch = 1;
    if (!engine->inputs().empty() && inputs.begin()->second.rank() > 0) batch = inputs.at(engine->inputs()[0].name).dim(0);
    double throughput = 1000.0 / mean * batch;
    if (a.bench.json) {
        std::printf(
            "{\"model\": \"%s\", \"backend\": \"%s\", \"threads\": %d, \"batch\": %lld, \"iterations\": %zu, "
            "\"min_ms\": %.6f, \"median_ms\": %.6f, \"mean_ms\": %.6f, \"p99_ms\": %.6f, \"max_ms\": %.6f, "
            "\"throughput_per_s\": %.3f, \"build_s\": %.3f}\n",
            a.model.model.c_str(), engine->target_backend().c_str(), a.bench.threads, static_cast<long long>(batch),
            ms.size(), sorted.front(), median, mean, pct(0.99), sorted.back(), throughput, build_s);
    } else {
        std::printf("model        %s\nbackend      %s (%d thread%s)\nbatch        %lld\niterations   %zu\n",
                    a.model.model.c_str(), engine->target_backend().c_str(), a.bench.threads,
                    a.bench.threads == 1 ? "" : "s", static_cast<long long>(batch), ms.size());
        std::printf("latency ms   min %.3f  median %.3f  mean %.3f  p99 %.3f  max %.3f\n", sorted.front(), median,
                    mean, pct(0.99), sorted.back());
        std::printf("throughput   %.2f samples/s\nbuild/load   %.3f s\n", throughput, build_s);
    }
    return 0;
}

}  // namespace kiln::cli
