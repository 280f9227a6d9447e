/* The `ropedist` program: bootstrap, flags, config, backend, shard loading, prompts on the
 * coordinator, generation and output. rd_app_main is the whole of main(). */
#ifndef RD_APP_H
#define RD_APP_H

int rd_app_main(int argc, char **argv);

#endif
