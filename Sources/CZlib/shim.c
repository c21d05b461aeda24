// The module needs one translation unit; zlib itself is linked from the system (Debian zlib1g-dev).
#include "CZlib.h"
