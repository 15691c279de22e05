# cmake -DREADELF=... -DLIB=libphx.so -DEXE=program -DSONAME=libphx.so.0 -P check-soname.cmake
# Checks that the shared library names itself SONAME and that a program linked against it
# records SONAME (not a file name or path) as NEEDED.
execute_process(COMMAND "${READELF}" -d "${LIB}" OUTPUT_VARIABLE lib_out RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "readelf -d ${LIB} failed")
endif()
if(NOT lib_out MATCHES "\\(SONAME\\)[^\n]*\\[${SONAME}\\]")
  message(FATAL_ERROR "${LIB} has no SONAME ${SONAME}:\n${lib_out}")
endif()
execute_process(COMMAND "${READELF}" -d "${EXE}" OUTPUT_VARIABLE exe_out RESULT_VARIABLE rc)
if(NOT exe_out MATCHES "\\(NEEDED\\)[^\n]*\\[${SONAME}\\]")
  message(FATAL_ERROR "${EXE} does not record NEEDED ${SONAME}:\n${exe_out}")
endif()
message(STATUS "SONAME ${SONAME}: ok")
