// Tensor aliases. Weights follow the PyTorch nn.Linear convention: W is [out, in] and y = x W^T.
#pragma once

#include <Eigen/Core>

namespace dsv3 {

using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;  // [rows, cols]
using Vec = Eigen::VectorXf;
using RowVec = Eigen::RowVectorXf;

}  // namespace dsv3
