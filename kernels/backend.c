/* Backend lifetime helpers shared by all backends. */
#include "kernels/ops.h"

void rd_backend_free(struct rd_backend *be)
{
    if (!be) return;
    be->ops->destroy(be);
}
