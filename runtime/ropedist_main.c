/* Entry point of `ropedist` (see runtime/app.h). */
#include "runtime/app.h"

int main(int argc, char **argv) { return rd_app_main(argc, argv); }
