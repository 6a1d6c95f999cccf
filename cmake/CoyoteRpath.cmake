# Run paths of the installed targets.
#
# CMake pads the build-tree run path of a target whose installed run path differs (room for the rewrite at install)
# with empty entries, and the loader reads an empty entry as the current directory: a build-tree program started
# elsewhere would look there for its libraries first. So installed targets are built with their installed,
# $ORIGIN-relative run path, and the build tree gets links to the project's libraries where those paths point
# (coyote_rpath_links at the end of the top-level CMakeLists.txt).

set_property(GLOBAL PROPERTY COYOTE_RPATH_LINK_DIRS "")

# The directory `target` is built into ($ORIGIN in the build tree), in `out`.
function(coyote_output_dir target out)
  get_target_property(type ${target} TYPE)
  if(type STREQUAL "EXECUTABLE")
    get_target_property(dir ${target} RUNTIME_OUTPUT_DIRECTORY)
  else()
    get_target_property(dir ${target} LIBRARY_OUTPUT_DIRECTORY)
  endif()
  if(NOT dir)
    get_target_property(dir ${target} BINARY_DIR)
  endif()
  set(${out} ${dir} PARENT_SCOPE)
endfunction()

# Gives `target` the run path `rpath` (a list, $ORIGIN-relative), in the build tree as once installed. `rpath` is
# resolved against the target's build directory and each such directory receives links to the project's libraries.
function(coyote_installed_rpath target rpath)
  set_target_properties(${target} PROPERTIES INSTALL_RPATH "${rpath}" BUILD_WITH_INSTALL_RPATH ON)
  coyote_output_dir(${target} dir)
  foreach(entry IN LISTS rpath)
    string(REPLACE "$ORIGIN" "${dir}" entry "${entry}")
    cmake_path(NORMAL_PATH entry)
    string(REGEX REPLACE "/$" "" entry "${entry}") # NORMAL_PATH leaves one after "x/.."
    set_property(GLOBAL APPEND PROPERTY COYOTE_RPATH_LINK_DIRS "${entry}")
  endforeach()
endfunction()

# After every target exists: a target that links each of `libraries` (shared library targets of this project) into
# every directory an installed run path points to in the build tree, unless the library is already there.
function(coyote_rpath_links)
  get_property(dirs GLOBAL PROPERTY COYOTE_RPATH_LINK_DIRS)
  list(REMOVE_DUPLICATES dirs)
  set(commands)
  set(libs)
  foreach(lib IN LISTS ARGN)
    if(NOT TARGET ${lib})
      continue()
    endif()
    list(APPEND libs ${lib})
    coyote_output_dir(${lib} libdir)
    foreach(dir IN LISTS dirs)
      if(dir STREQUAL libdir)
        continue()
      endif()
      list(APPEND commands COMMAND ${CMAKE_COMMAND} -E make_directory ${dir}
        COMMAND ${CMAKE_COMMAND} -E create_symlink $<TARGET_FILE:${lib}> ${dir}/$<TARGET_SONAME_FILE_NAME:${lib}>)
    endforeach()
  endforeach()
  if(commands)
    add_custom_target(coyote_rpath_links ALL ${commands} COMMENT "Linking the libraries where installed run paths point" VERBATIM)
    add_dependencies(coyote_rpath_links ${libs})
  endif()
endfunction()
