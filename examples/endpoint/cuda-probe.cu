/* cuda-probe: prints the number of CUDA devices this process sees; exits 0
 * when there is at least one, 1 when there is none (no driver, no device). */
#include <cuda_runtime.h>
#include <stdio.h>

int main(void)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        printf("0 (%s)\n", cudaGetErrorString(e));
        return 1;
    }
    printf("%d\n", n);
    return n > 0 ? 0 : 1;
}
