// The emulator's stand-in for CUDA's mma.h (nvcuda::wmma).
#pragma once
#include "yoco_emu/wmma.h"
