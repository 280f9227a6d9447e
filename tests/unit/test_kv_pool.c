/* The KV block allocator: blocks are handed out on demand and never twice, a slot that cannot
 * get all it asks for takes nothing, released blocks come back, and a random run of grows and
 * releases keeps every block owned by at most one slot. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/kv_pool.h"
#include "test_util.h"

int main(void)
{
    struct rd_kv_pool p;
    CHECK(rd_kv_pool_init(&p, 10, 16, 3, 4) == RD_OK);
    CHECK(rd_kv_pool_blocks_for(&p, 0) == 0 && rd_kv_pool_blocks_for(&p, 1) == 1 &&
          rd_kv_pool_blocks_for(&p, 16) == 1 && rd_kv_pool_blocks_for(&p, 17) == 2);
    int32_t upd[3 * 16];
    int n = 0;
    CHECK(rd_kv_pool_grow(&p, 0, 20, upd, &n) && n == 2);
    CHECK(upd[0] == 0 && upd[1] == 0 && upd[2] == 0 && upd[3] == 0 && upd[4] == 1 && upd[5] == 1);
    CHECK(rd_kv_pool_grow(&p, 0, 32, upd, &n) && n == 2); /* still 2 blocks: nothing new */
    CHECK(rd_kv_pool_grow(&p, 1, 64, upd, &n) && n == 6 && rd_kv_pool_used(&p) == 6);
    CHECK(!rd_kv_pool_grow(&p, 2, 65, upd, &n)); /* more than max_blocks per slot */
    CHECK(rd_kv_pool_grow(&p, 2, 64, upd, &n) && n == 10 && p.n_free == 0);
    n = 0;
    CHECK(!rd_kv_pool_grow(&p, 0, 33, upd, &n) && n == 0 && p.n_owned[0] == 2); /* pool empty */
    rd_kv_pool_release(&p, 1);
    CHECK(p.n_free == 4 && p.n_owned[1] == 0);
    CHECK(rd_kv_pool_grow(&p, 0, 33, upd, &n) && n == 1 && upd[2] == 2); /* slot 1's first block */
    rd_kv_pool_free(&p);

    /* random grows and releases: no block is ever owned twice, counts add up */
    CHECK(rd_kv_pool_init(&p, 37, 4, 8, 16) == RD_OK);
    unsigned x = 12345;
    int bad = 0;
    for (int it = 0; it < 20000; it++) {
        x = x * 1103515245u + 12345u;
        int s = (int)((x >> 16) % 8);
        if ((x >> 8) % 5 == 0) rd_kv_pool_release(&p, s);
        else rd_kv_pool_grow(&p, s, (int)((x >> 12) % 70), NULL, NULL);
        char seen[37] = {0};
        int owned = 0;
        for (int q = 0; q < 8; q++)
            for (int j = 0; j < p.n_owned[q]; j++) {
                int32_t b = p.owned[q * 16 + j];
                if (b < 0 || b >= 37 || seen[b]++) bad++;
                owned++;
            }
        for (int i = 0; i < p.n_free; i++)
            if (seen[p.free_ids[i]]++) bad++;
        if (owned + p.n_free != 37) bad++;
    }
    CHECK_MSG(bad == 0, "%d inconsistencies in the random run", bad);
    rd_kv_pool_free(&p);
    return rd_test_finish("kv pool");
}
