// einhls_csim.h: instrumentation of the HLS kernels for C-simulation only (docs/hardware.md).
//
// Nothing here exists in synthesis: without the macros below every hook is an empty statement,
// and the hooks are also compiled out whenever __SYNTHESIS__ is defined.
//
// EINHLS_CSIM_CYCLES   every dataflow process announces itself once per call
//                      (EINHLS_CSIM_PROCESS, a call is one frame) and every iteration of each of
//                      its pipelined loops (EINHLS_CSIM_COUNT).  At II = 1 a pipelined loop takes
//                      one cycle per iteration, so the iterations of one call are the process's
//                      cycles per frame, and the slowest process sets the design's interval.  At
//                      exit the counts go to the file named by the environment variable
//                      EINHLS_CSIM_CYCLES_FILE (one line per process: calls, most iterations in one
//                      call, all iterations, the process's signature).
// EINHLS_CSIM_CHECKS   hardware rules C-sim cannot see by itself, checked on every access (for
//                      now: the read-after-write distance a DEPENDENCE pragma promises, one write per
//                      cycle into each bank of a banked buffer).
#ifndef EINHLS_CSIM_H
#define EINHLS_CSIM_H

#if defined(EINHLS_CSIM_CYCLES) && !defined(__SYNTHESIS__)
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

namespace einhls {
namespace csim {

struct ProcessCount {
    unsigned long long calls = 0, most = 0, total = 0, current = 0;
};

class CycleRegistry {
  public:
    std::map<std::string, ProcessCount> processes;
    ~CycleRegistry() {
        const char* path = std::getenv("EINHLS_CSIM_CYCLES_FILE");
        if (path == nullptr || *path == 0) return;
        std::FILE* file = std::fopen(path, "w");
        if (file == nullptr) return;
        for (const auto& entry : processes) {
            const ProcessCount& p = entry.second;
            std::fprintf(file, "%llu\t%llu\t%llu\t%s\n", p.calls, p.most, p.total, entry.first.c_str());
        }
        std::fclose(file);
    }
};

inline CycleRegistry& registry() {
    static CycleRegistry instance;
    return instance;
}

// One call of a process (one frame): counts its pipelined iterations, folded in when it returns.
class ProcessCall {
  public:
    explicit ProcessCall(const char* signature) : count_(registry().processes[signature]) { count_.current = 0; }
    ~ProcessCall() {
        count_.calls++;
        count_.total += count_.current;
        if (count_.current > count_.most) count_.most = count_.current;
    }
    void iteration() { count_.current++; }

  private:
    ProcessCount& count_;
};

}  // namespace csim
}  // namespace einhls

#define EINHLS_CSIM_PROCESS() ::einhls::csim::ProcessCall einhls_csim_call_(__PRETTY_FUNCTION__)
#define EINHLS_CSIM_COUNT() einhls_csim_call_.iteration()
#else
#define EINHLS_CSIM_PROCESS() \
    do {                      \
    } while (0)
#define EINHLS_CSIM_COUNT() \
    do {                    \
    } while (0)
#endif

#if defined(EINHLS_CSIM_CHECKS) && !defined(__SYNTHESIS__)
#include <cstdio>
#include <cstdlib>

// A read `distance` issue cycles after the write it needs; the hardware only guarantees `least`.
inline void einhls_csim_check_raw(long long distance, unsigned least, const char* what) {
    if (distance < (long long)least) {
        std::fprintf(stderr, "einhls C-sim check: %s read %lld cycles after its write, the pipeline needs %u\n",
                     what, distance, least);
        std::abort();
    }
}

// `accesses` to one single-port memory in one cycle; the hardware has one port.
inline void einhls_csim_check_one_port(unsigned accesses, const char* what) {
    if (accesses > 1) {
        std::fprintf(stderr, "einhls C-sim check: %s written %u times in one cycle, it has one write port\n",
                     what, accesses);
        std::abort();
    }
}
#endif

#endif  // EINHLS_CSIM_H
