// Tensor aliases. Weights follow the PyTorch nn.Linear convention: W is [out, in] and y = x W^T.
#pragma once

#include <Eigen/Core>

namespace dsv3 {

// Scalar-generic forms: the trainer runs in float32 and, for gradient checks, in double.
template <class S>
using MatT = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;  // [rows, cols]
template <class S>
using VecT = Eigen::Matrix<S, Eigen::Dynamic, 1>;

using Mat = MatT<float>;  // [rows, cols]
using Vec = VecT<float>;
using RowVec = Eigen::RowVectorXf;

}  // namespace dsv3
