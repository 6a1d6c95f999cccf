# GPU memory for getMem(GPU) (COYOTE_ENABLE_GPU, off by default): adds the one GPU source of coyote_runtime.
# OFF: src/backend/hw/gpu/gpu_disabled.cpp (a GPU allocation names the option). ON: the CUDA driver API path
# (cuda_memory.cpp: libcuda.so.1 is loaded at run time, so only cuda.h is needed to build). Coyote's HIP path needs
# hsa_amd_portable_export_dmabuf, which is checked for and reported; it is not implemented here.
# Sets COYOTE_GPU_BACKEND to "CUDA" or "" and, when CUDA is used, COYOTE_CUDA_INCLUDE_DIRS (the GPU tests use it).
set(COYOTE_GPU_BACKEND "")
set(_coyote_gpu_dir ${PROJECT_SOURCE_DIR}/src/backend/hw/gpu)
if(NOT COYOTE_ENABLE_GPU)
  target_sources(coyote_runtime PRIVATE ${_coyote_gpu_dir}/gpu_disabled.cpp)
  return()
endif()

# HIP (ROCm): Coyote exports HIP memory with hsa_amd_portable_export_dmabuf (hsa/hsa_ext_amd.h). Say what was found.
set(_coyote_hip_note "no HIP (ROCm) was found")
find_package(hip QUIET)
if(hip_FOUND)
  find_file(_coyote_hsa_ext hsa/hsa_ext_amd.h HINTS ${hip_INCLUDE_DIRS} /opt/rocm/include PATH_SUFFIXES include)
  set(_coyote_has_export FALSE)
  if(_coyote_hsa_ext)
    file(STRINGS ${_coyote_hsa_ext} _coyote_export_decl REGEX "hsa_amd_portable_export_dmabuf")
    if(_coyote_export_decl)
      set(_coyote_has_export TRUE)
    endif()
  endif()
  if(_coyote_has_export)
    set(_coyote_hip_note "HIP ${hip_VERSION} has hsa_amd_portable_export_dmabuf, but this runtime implements the "
        "dma-buf export for CUDA only")
  else()
    set(_coyote_hip_note "HIP ${hip_VERSION} was found, but its hsa/hsa_ext_amd.h ('${_coyote_hsa_ext}') does not "
        "declare hsa_amd_portable_export_dmabuf, which Coyote's HIP path needs (Debian 12's ROCm 5.2 lacks it)")
  endif()
  string(JOIN "" _coyote_hip_note ${_coyote_hip_note})
endif()

find_package(CUDAToolkit QUIET)
if(NOT CUDAToolkit_FOUND)
  message(FATAL_ERROR "COYOTE_ENABLE_GPU=ON needs the CUDA toolkit's cuda.h (find_package(CUDAToolkit); set "
    "CUDAToolkit_ROOT, e.g. /usr/local/cuda), and none was found. HIP: ${_coyote_hip_note}.")
endif()
message(STATUS "COYOTE_ENABLE_GPU: GPU memory through the CUDA driver API (CUDA ${CUDAToolkit_VERSION}, "
  "${CUDAToolkit_INCLUDE_DIRS}); HIP: ${_coyote_hip_note}")
target_sources(coyote_runtime PRIVATE ${_coyote_gpu_dir}/cuda_memory.cpp)
# Only this file sees cuda.h: the other objects build exactly as in a build without the option.
list(TRANSFORM CUDAToolkit_INCLUDE_DIRS PREPEND "-isystem" OUTPUT_VARIABLE _coyote_cuda_isystem)
set_source_files_properties(${_coyote_gpu_dir}/cuda_memory.cpp PROPERTIES COMPILE_OPTIONS "${_coyote_cuda_isystem}")
set(COYOTE_GPU_BACKEND CUDA)
set(COYOTE_CUDA_INCLUDE_DIRS ${CUDAToolkit_INCLUDE_DIRS})
