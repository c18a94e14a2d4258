#include <sys/capability.h>
#include <sys/prctl.h>

// prctl(2) is variadic, which Swift cannot call; these fix its arguments.
static inline int sluice_prctl_set(int option, unsigned long value) {
    return prctl(option, value, 0UL, 0UL, 0UL);
}

static inline int sluice_prctl_get(int option) {
    return prctl(option, 0UL, 0UL, 0UL, 0UL);
}
