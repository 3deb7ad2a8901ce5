// kiln bench: warm-up, then timed runs; latency min/median/mean/p99 and throughput.
// Host engines time ctx->run(). GPU engines keep inputs and outputs in device buffers (set_tensor_address +
// enqueue, the way a serving loop uses them): the engine time is the GPU time between the first and last kernel
// (CUDA events), the host<->device copies of the same tensors are timed apart and reported separately.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <numeric>

#include "kiln/device.h"
#include "tools/cli/commands.h"
#include "tools/cli/session.h"

namespace kiln::cli {

namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

struct Stats {
    double min = 0, median = 0, mean = 0, p99 = 0, max = 0;
    explicit Stats(std::vector<double> v) {
        if (v.empty()) return;
        std::sort(v.begin(), v.end());
        min = v.front(), max = v.back();
        mean = std::accumulate(v.begin(), v.end(), 0.0) / v.size();
        median = v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
        p99 = v[std::min(v.size() - 1, static_cast<size_t>(0.99 * v.size()))];
    }
};

// Runs `once` until --iterations or --duration is reached; returns the wall time of each call.
template <typename F>
std::vector<double> timed_loop(const BenchOptions& b, F once) {
    std::vector<double> ms;
    auto start = std::chrono::steady_clock::now();
    for (;;) {
        auto t0 = std::chrono::steady_clock::now();
        once();
        ms.push_back(ms_since(t0));
        if (b.iterations > 0 ? static_cast<int>(ms.size()) >= b.iterations
                             : ms_since(start) >= 1000.0 * b.duration)
            break;
    }
    return ms;
}

// Per layer, the median over kProfileRuns profiled runs (one run alone is at the mercy of the machine's noise).
void print_profile(ExecutionContext& ctx, const std::map<std::string, Tensor>& inputs, int top) {
    constexpr int kProfileRuns = 21;
    std::vector<std::pair<std::string, double>> layers;
    std::vector<std::vector<double>> times;
    ctx.set_profiling(true);
    for (int r = 0; r < kProfileRuns; ++r) {
        ctx.run(inputs);
        std::vector<std::pair<std::string, double>> last = ctx.last_profile();
        if (r == 0) {
            layers = last;
            times.resize(last.size());
        }
        for (size_t i = 0; i < last.size() && i < times.size(); ++i) times[i].push_back(last[i].second);
    }
    ctx.set_profiling(false);
    for (size_t i = 0; i < layers.size(); ++i) {
        std::nth_element(times[i].begin(), times[i].begin() + times[i].size() / 2, times[i].end());
        layers[i].second = times[i][times[i].size() / 2];
    }
    double total = 0;
    for (auto& l : layers) total += l.second;
    std::sort(layers.begin(), layers.end(), [](auto& x, auto& y) { return x.second > y.second; });
    std::fprintf(stderr, "profile: %zu layers, %.3f ms in layers (per-layer medians of %d runs)\n", layers.size(),
                 total, kProfileRuns);
    for (size_t i = 0; i < layers.size() && static_cast<int>(i) < top; ++i)
        std::fprintf(stderr, "  %9.3f ms  %5.1f%%  %s\n", layers[i].second, 100 * layers[i].second / total,
                     layers[i].first.c_str());
}

// GPU engines: device-resident inputs/outputs, engine time from CUDA events, copies timed separately.
struct GpuTimes {
    std::vector<double> gpu_ms;
    double h2d_ms = 0, d2h_ms = 0;
};

GpuTimes bench_gpu(const Engine& engine, ExecutionContext& ctx, const std::map<std::string, Tensor>& inputs,
                   const BenchOptions& b, std::vector<double>* wall) {
    std::map<std::string, DeviceBuffer> bufs;
    for (auto& [name, t] : inputs) {
        bufs.emplace(name, DeviceBuffer(t.bytes()));
        ctx.set_input_shape(name, t.shape());
        ctx.set_tensor_address(name, bufs.at(name).data());
    }
    std::map<std::string, Tensor> host_out;
    for (const TensorDesc& d : engine.outputs()) {
        Tensor t(d.dtype, ctx.output_shape(d.name));
        bufs.emplace(d.name, DeviceBuffer(t.bytes()));
        ctx.set_tensor_address(d.name, bufs.at(d.name).data());
        host_out[d.name] = std::move(t);
    }
    auto upload = [&] {
        for (auto& [name, t] : inputs) bufs.at(name).upload(t.raw(), t.bytes());
    };
    auto download = [&] {
        for (auto& [name, t] : host_out) bufs.at(name).download(t.raw(), t.bytes());
    };
    upload();
    for (int i = 0; i < std::max(b.warmup, 2); ++i) ctx.enqueue();  // the second call captures the CUDA graph
    GpuTimes g;
    *wall = timed_loop(b, [&] {
        ctx.enqueue();
        g.gpu_ms.push_back(ctx.last_gpu_ms());
    });
    std::vector<double> up, down;
    for (int i = 0; i < 20; ++i) {
        auto t0 = std::chrono::steady_clock::now();
        upload();
        up.push_back(ms_since(t0));
        t0 = std::chrono::steady_clock::now();
        download();
        down.push_back(ms_since(t0));
    }
    g.h2d_ms = Stats(up).median;
    g.d2h_ms = Stats(down).median;
    return g;
}

}  // namespace

int cmd_bench(const BenchArgs& a) {
    StderrLogger logger(a.model.verbose ? Severity::kVerbose : Severity::kWarning);
    auto tb = std::chrono::steady_clock::now();
    std::shared_ptr<Engine> engine = load_engine(a.model, logger);
    double build_s = ms_since(tb) / 1000.0;
    std::map<std::string, Tensor> inputs = prepare_inputs(*engine, a.inputs);
    auto ctx = engine->create_context();
    ctx->set_num_threads(a.bench.threads);
    ctx->set_cuda_graphs(!a.model.no_cuda_graph);
    std::vector<double> wall;
    GpuTimes gpu;
    const bool on_gpu = engine->on_device();
    if (on_gpu) {
        gpu = bench_gpu(*engine, *ctx, inputs, a.bench, &wall);
    } else {
        for (int i = 0; i < a.bench.warmup; ++i) ctx->run(inputs);
        wall = timed_loop(a.bench, [&] { ctx->run(inputs); });
    }
    if (a.bench.profile > 0) print_profile(*ctx, inputs, a.bench.profile);
    // the engine number: GPU time on GPUs, wall time of run() on host backends
    Stats s(on_gpu ? gpu.gpu_ms : wall), w(wall);
    int64_t batch = 1;
    if (!engine->inputs().empty() && inputs.at(engine->inputs()[0].name).rank() > 0)
        batch = inputs.at(engine->inputs()[0].name).dim(0);
    double throughput = 1000.0 / s.mean * batch;
    const std::string graphs = on_gpu ? (a.model.no_cuda_graph ? "off" : "on") : "n/a";
    if (a.bench.json) {
        std::printf(
            "{\"model\": \"%s\", \"backend\": \"%s\", \"threads\": %d, \"batch\": %lld, \"iterations\": %zu, "
            "\"min_ms\": %.6f, \"median_ms\": %.6f, \"mean_ms\": %.6f, \"p99_ms\": %.6f, \"max_ms\": %.6f, "
            "\"throughput_per_s\": %.3f, \"build_s\": %.3f, \"timing\": \"%s\", \"cuda_graph\": \"%s\", "
            "\"wall_median_ms\": %.6f, \"wall_p99_ms\": %.6f, \"h2d_ms\": %.6f, \"d2h_ms\": %.6f}\n",
            a.model.model.c_str(), engine->target_backend().c_str(), a.bench.threads, static_cast<long long>(batch),
            wall.size(), s.min, s.median, s.mean, s.p99, s.max, throughput, build_s,
            on_gpu ? "cuda_events" : "wall", graphs.c_str(), w.median, w.p99, gpu.h2d_ms, gpu.d2h_ms);
        return 0;
    }
    std::printf("model        %s\nbackend      %s", a.model.model.c_str(), engine->target_backend().c_str());
    if (on_gpu) std::printf(" (CUDA graph %s)\n", graphs.c_str());
    else std::printf(" (%d thread%s)\n", a.bench.threads, a.bench.threads == 1 ? "" : "s");
    std::printf("batch        %lld\niterations   %zu\n", static_cast<long long>(batch), wall.size());
    std::printf("latency ms   min %.3f  median %.3f  mean %.3f  p99 %.3f  max %.3f%s\n", s.min, s.median, s.mean,
                s.p99, s.max, on_gpu ? "  (GPU time, CUDA events)" : "");
    if (on_gpu) {
        std::printf("wall ms      median %.3f  p99 %.3f  (enqueue to completion, host)\n", w.median, w.p99);
        std::printf("copies ms    host->device %.3f  device->host %.3f  (not in the numbers above)\n", gpu.h2d_ms,
                    gpu.d2h_ms);
    }
    std::printf("throughput   %.2f samples/s\nbuild/load   %.3f s\n", throughput, build_s);
    return 0;
}

}  // namespace kiln::cli
