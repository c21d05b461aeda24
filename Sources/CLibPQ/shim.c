#include "CLibPQ.h"
// libpq needs no shim: every function Swift calls is non-variadic. This file makes the target a C module.
