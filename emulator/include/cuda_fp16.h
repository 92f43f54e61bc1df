// The emulator's stand-in for CUDA's cuda_fp16.h: kernels/*.cu compile unchanged as host C++.
#pragma once
#include "yoco_emu/device.h"
