#ifndef BULWARK_CSODIUM_SHIM_H
#define BULWARK_CSODIUM_SHIM_H
#include <sodium.h>
#endif
