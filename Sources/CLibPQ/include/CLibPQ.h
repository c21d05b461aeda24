#ifndef UNDERCURRENT_CLIBPQ_H
#define UNDERCURRENT_CLIBPQ_H

// libpq, PostgreSQL's C client (Debian's libpq-dev). Debian installs its headers under postgresql/.
#include <postgresql/libpq-fe.h>

#endif
