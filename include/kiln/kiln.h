#pragma once
/// \file kiln.h  Everything a kiln user needs: errors, tensors, logger, network, ONNX parser, builder, runtime.
#include "kiln/attribute.h"
#include "kiln/builder.h"
#include "kiln/device.h"
#include "kiln/engine.h"
#include "kiln/logger.h"
#include "kiln/network.h"
#include "kiln/onnx_parser.h"
#include "kiln/runtime.h"
#include "kiln/status.h"
#include "kiln/tensor.h"
#include "kiln/version.h"
