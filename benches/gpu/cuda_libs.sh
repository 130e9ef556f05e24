# Sourced by the GPU scripts: puts the CUDA libraries that cudarc and the
# runtime dlopen on LD_LIBRARY_PATH. libcuda comes with the driver;
# libcublas.so.12 and libnvJitLink.so.* from the CUDA toolkit or the pip
# wheels that JAX installs (nvidia-cublas-cu12, nvidia-nvjitlink-cu12).
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
    $(python3 -c 'import nvidia.cublas as m; print(list(m.__path__)[0] + "/lib")' 2>/dev/null) \
    $(python3 -c 'import nvidia.nvjitlink as m; print(list(m.__path__)[0] + "/lib")' 2>/dev/null); do
    [ -d "$d" ] && LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
export LD_LIBRARY_PATH
