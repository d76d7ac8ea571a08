// Python bindings for ncii_hash._core. Thin on purpose: check shapes and dtypes, release
// the GIL, call the plain C++ functions, map C++ exceptions to Python ones
// (std::invalid_argument -> ValueError, which pybind11 does by default).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <climits>
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

#include "features_index.h"
#include "hamming.h"
#include "mih.h"
#include "pdq.h"
#include "simd.h"

namespace py = pybind11;

namespace {

using U8Array = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>;

ncii::pdq::ImageView image_view(const py::array& arr) {
  if (py::isinstance<py::array_t<float>>(arr) && arr.ndim() == 2) {
    // A float32 luma plane (see ImageView::luma).
    ncii::pdq::ImageView v{};
    v.channels = 1;
    v.rows = static_cast<int>(arr.shape(0));
    v.cols = static_cast<int>(arr.shape(1));
    v.row_stride = arr.strides(0);
    v.col_stride = arr.strides(1);
    if (v.rows > 0 && v.cols > 0 && (v.row_stride <= 0 || v.col_stride <= 0 || v.row_stride % 4 || v.col_stride % 4))
      throw std::invalid_argument("luma strides must be positive multiples of 4 (use numpy.ascontiguousarray)");
    v.luma = static_cast<const float*>(arr.data());
    v.data = nullptr;
    return v;
  }
  if (!py::isinstance<py::array_t<uint8_t>>(arr))
    throw py::type_error("image must be a numpy uint8 array (or a 2-D float32 luma plane), got dtype " +
                         std::string(py::str(arr.dtype())));
  ncii::pdq::ImageView v{};
  if (arr.ndim() == 2) {
    v.channels = 1;
  } else if (arr.ndim() == 3) {
    v.channels = static_cast<int>(arr.shape(2));
    if (v.channels != 1 && v.channels != 3 && v.channels != 4)
      throw std::invalid_argument("image must have shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got " +
                                  std::to_string(v.channels) + " channels");
  } else {
    throw std::invalid_argument("image must be 2-D (grey) or 3-D (H, W, C); got " +
                                std::to_string(arr.ndim()) + " dimensions");
  }
  if (arr.shape(0) > (1 << 30) || arr.shape(1) > (1 << 30))
    throw std::invalid_argument("image is too large");
  v.rows = static_cast<int>(arr.shape(0));
  v.cols = static_cast<int>(arr.shape(1));
  v.row_stride = arr.strides(0);
  v.col_stride = arr.strides(1);
  if (arr.ndim() == 3 && arr.strides(2) != 1)
    throw std::invalid_argument("image channels must be contiguous (use numpy.ascontiguousarray)");
  if (v.rows > 0 && v.cols > 0 && (v.row_stride <= 0 || v.col_stride <= 0))
    throw std::invalid_argument("image strides must be positive (use numpy.ascontiguousarray)");
  v.data = static_cast<const uint8_t*>(arr.data());
  return v;
}

py::tuple pdq_hash_py(const py::array& image, bool dihedral, bool reference) {
  const ncii::pdq::ImageView v = image_view(image);
  py::array_t<uint8_t> hash({ncii::pdq::kHashBytes});
  py::object dih = py::none();
  uint8_t* hp = hash.mutable_data();
  uint8_t* dp = nullptr;
  if (dihedral) {
    py::array_t<uint8_t> d({ncii::pdq::kNumDihedral, ncii::pdq::kHashBytes});
    dp = d.mutable_data();
    dih = std::move(d);
  }
  int quality = 0;
  {
    py::gil_scoped_release release;
    quality = ncii::pdq::hash_image(v, hp, dp, reference, ncii::active_simd_level());
  }
  return py::make_tuple(hash, quality, dih);
}

py::array_t<float> downsample64_py(const py::array& image, bool reference) {
  const ncii::pdq::ImageView v = image_view(image);
  py::array_t<float> out({64, 64});
  float* op = out.mutable_data();
  {
    py::gil_scoped_release release;
    ncii::pdq::downsample64_image(v, op, reference, ncii::active_simd_level());
  }
  return out;
}

py::array_t<float> dct16_py(py::array_t<float, py::array::c_style | py::array::forcecast> buf) {
  if (buf.ndim() != 2 || buf.shape(0) != 64 || buf.shape(1) != 64)
    throw std::invalid_argument("expected a float32 array of shape (64, 64)");
  py::array_t<float> out({16, 16});
  ncii::pdq::dct64_to_16(buf.data(), out.mutable_data());
  return out;
}

}  // namespace


namespace {

const uint8_t* u8_contig(const py::array& a, const char* name) {
  if (!py::isinstance<py::array_t<uint8_t>>(a) || !(a.flags() & py::array::c_style))
    throw std::invalid_argument(std::string(name) + " must be a C-contiguous uint8 array");
  return static_cast<const uint8_t*>(a.data());
}

template <class T>
const T* contig(const py::array& a, const char* name, const char* dtype) {
  if (!py::isinstance<py::array_t<T>>(a) || !(a.flags() & py::array::c_style))
    throw std::invalid_argument(std::string(name) + " must be a C-contiguous " + dtype + " array");
  return static_cast<const T*>(a.data());
}

void check_records(const py::array& records, std::size_t n_images) {
  u8_contig(records, "records");
  if (static_cast<std::size_t>(records.nbytes()) != n_images * ncii::features::kSlots * ncii::features::kRecordBytes)
    throw std::invalid_argument("records must hold 256 slots of 38 bytes per image");
}

void register_features(py::module_& m) {
  namespace lf = ncii::features;
  m.def(
      "lf_anms",
      [](const py::array& xy, const py::array& response, std::size_t keep) {
        const auto* p = contig<float>(xy, "xy", "float32");
        const auto* r = contig<float>(response, "response", "float32");
        const std::size_t n = static_cast<std::size_t>(response.size());
        if (xy.ndim() != 2 || xy.shape(1) != 2 || static_cast<std::size_t>(xy.shape(0)) != n)
          throw std::invalid_argument("xy must be (n, 2) with one response per point");
        std::vector<int64_t> out;
        {
          py::gil_scoped_release release;
          out = lf::anms(p, r, n, keep);
        }
        py::array_t<int64_t> a(static_cast<py::ssize_t>(out.size()));
        if (!out.empty()) std::memcpy(a.mutable_data(), out.data(), out.size() * 8);
        return a;
      },
      py::arg("xy"), py::arg("response"), py::arg("keep"),
      "Adaptive non-maximal suppression over points in decreasing response order -> kept indices.");
  m.def(
      "lf_build_tables",
      [](const py::array& records, const py::array& counts, const py::array& positions) {
        const auto* cnt = contig<uint16_t>(counts, "counts", "uint16");
        const std::size_t n_images = static_cast<std::size_t>(counts.size());
        check_records(records, n_images);
        const auto* pos = contig<uint16_t>(positions, "bit_positions", "uint16");
        if (positions.ndim() != 2) throw std::invalid_argument("bit_positions must be (tables, key_bits)");
        const int nt = static_cast<int>(positions.shape(0)), kb = static_cast<int>(positions.shape(1));
        auto tables = std::make_unique<lf::Tables>();
        {
          py::gil_scoped_release release;
          lf::build_tables(static_cast<const uint8_t*>(records.data()), cnt, n_images, pos, nt, kb, *tables);
        }
        const py::ssize_t nb1 = (py::ssize_t{1} << kb) + 1, np_ = static_cast<py::ssize_t>(tables->n_postings);
        py::array_t<uint32_t> off({static_cast<py::ssize_t>(nt), nb1});
        py::array_t<uint32_t> post({static_cast<py::ssize_t>(nt), np_});
        std::memcpy(off.mutable_data(), tables->offsets.data(), tables->offsets.size() * 4);
        if (!tables->postings.empty())
          std::memcpy(post.mutable_data(), tables->postings.data(), tables->postings.size() * 4);
        return py::make_tuple(off, post);
      },
      py::arg("records"), py::arg("counts"), py::arg("bit_positions"),
      "Bucket tables of a feature segment -> (offsets (L, 2**K + 1) uint32, postings (L, P) uint32 slots).");
  m.def(
      "lf_vote",
      [](const py::array& desc, const py::array& angle, const py::array& octave, const py::array& records,
         std::size_t n_images, const py::object& removed, const py::array& positions, const py::array& offsets,
         const py::array& postings, int max_distance, int min_score, std::size_t top, std::size_t max_bucket,
         int threads) {
        lf::Query q;
        q.desc = u8_contig(desc, "desc");
        q.nq = desc.ndim() == 2 && desc.shape(1) == 32 ? static_cast<std::size_t>(desc.shape(0)) : SIZE_MAX;
        if (q.nq == SIZE_MAX) throw std::invalid_argument("desc must be (n, 32)");
        q.angle = u8_contig(angle, "angle");
        q.octave = u8_contig(octave, "octave");
        if (static_cast<std::size_t>(angle.size()) != q.nq || static_cast<std::size_t>(octave.size()) != q.nq)
          throw std::invalid_argument("angle and octave need one entry per descriptor");
        check_records(records, n_images);
        const uint8_t* rm = nullptr;
        py::array rm_arr;
        if (!removed.is_none()) {
          rm_arr = removed.cast<py::array>();
          rm = u8_contig(rm_arr, "removed");
          if (static_cast<std::size_t>(rm_arr.size()) != n_images)
            throw std::invalid_argument("removed needs one byte per image");
        }
        const auto* pos = contig<uint16_t>(positions, "bit_positions", "uint16");
        const auto* off = contig<uint32_t>(offsets, "offsets", "uint32");
        const auto* post = contig<uint32_t>(postings, "postings", "uint32");
        if (positions.ndim() != 2 || offsets.ndim() != 2 || postings.ndim() != 2)
          throw std::invalid_argument("bit_positions, offsets and postings must be 2-D");
        const int nt = static_cast<int>(positions.shape(0)), kb = static_cast<int>(positions.shape(1));
        if (kb < 1 || kb > lf::kMaxKeyBits) throw std::invalid_argument("key_bits must be 1..30");
        if (offsets.shape(0) != nt || postings.shape(0) != nt ||
            offsets.shape(1) != (py::ssize_t{1} << kb) + 1)
          throw std::invalid_argument("offsets/postings do not match bit_positions");
        for (int i = 0; i < nt * kb; ++i)
          if (pos[i] >= 256) throw std::invalid_argument("bit positions must be < 256");
        lf::VoteParams params;
        params.max_distance = max_distance;
        params.min_score = min_score;
        params.top = top;
        params.max_bucket = max_bucket;
        params.threads = ncii::hamming::resolve_threads(threads);
        lf::Candidates c;
        {
          py::gil_scoped_release release;
          c = lf::vote(q, static_cast<const uint8_t*>(records.data()), n_images, rm, pos, nt, kb, off, post,
                       static_cast<std::size_t>(postings.shape(1)), params);
        }
        auto arr = [](const auto& v) {
          using T = typename std::decay_t<decltype(v)>::value_type;
          py::array_t<T> a(static_cast<py::ssize_t>(v.size()));
          if (!v.empty()) std::memcpy(a.mutable_data(), v.data(), v.size() * sizeof(T));
          return a;
        };
        return py::make_tuple(arr(c.image), arr(c.score), arr(c.votes), c.touched);
      },
      py::arg("desc"), py::arg("angle"), py::arg("octave"), py::arg("records"), py::arg("n_images"),
      py::arg("removed"), py::arg("bit_positions"), py::arg("offsets"), py::arg("postings"),
      py::arg("max_distance"), py::arg("min_score"), py::arg("top"), py::arg("max_bucket") = 0,
      py::arg("threads") = 0,
      "Candidate images of a feature segment -> (images int64, hough scores int32, votes int32, postings read). "
      "Postings must come from lf_build_tables over the same records (checked by the caller).");
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "ncii_hash C++ core (private; use the ncii_hash package)";
  register_features(m);

  // ---- run-time SIMD dispatch ---------------------------------------------------------
  m.def("simd_level", [] { return std::string(ncii::simd_level_name(ncii::active_simd_level())); },
        "Instruction set the kernels use now: 'scalar', 'avx2' or 'avx512'.");
  m.def("detected_simd_level", [] { return std::string(ncii::simd_level_name(ncii::detected_simd_level())); });
  m.def("set_simd_cap", [](const std::string& name) { return std::string(ncii::simd_level_name(ncii::set_simd_cap(name))); },
        py::arg("level"), "Cap the instruction set (never raises it above what the CPU has).");

  // ---- PDQ ----------------------------------------------------------------------------
  m.def("pdq_hash", &pdq_hash_py, py::arg("image"), py::arg("dihedral") = false, py::arg("reference") = false,
        "PDQ of a uint8 (H,W) or (H,W,C) array -> (hash (32,), quality, dihedral (8,32) or None).");
  m.def("pdq_downsample64", &downsample64_py, py::arg("image"), py::arg("reference") = false);
  m.def("pdq_dct16", &dct16_py, py::arg("buffer64"));

  // ---- Hamming kernels and exact search (csrc/hamming.*) ------------------------------
  // The Python layer (ncii_hash.index) validates user input; these checks guard the core.
  {
    auto codes_view = [](const py::array& arr, const char* name) -> const uint8_t* {
      if (!py::isinstance<py::array_t<uint8_t>>(arr) || arr.ndim() != 2 ||
          arr.shape(1) != static_cast<py::ssize_t>(ncii::hamming::kCodeBytes))
        throw py::type_error(std::string(name) + " must be a uint8 array of shape (N, 32)");
      if (!(arr.flags() & py::array::c_style))
        throw std::invalid_argument(std::string(name) + " must be C-contiguous (use numpy.ascontiguousarray)");
      return static_cast<const uint8_t*>(arr.data());
    };
    auto i64_view = [](const py::object& obj, std::size_t expected, bool exact, const char* name) -> const int64_t* {
      if (obj.is_none()) return nullptr;
      py::array arr = py::reinterpret_borrow<py::array>(obj);
      if (!py::isinstance<py::array_t<int64_t>>(arr) || arr.ndim() != 1 || !(arr.flags() & py::array::c_style))
        throw py::type_error(std::string(name) + " must be a contiguous 1-D int64 array");
      if (exact && static_cast<std::size_t>(arr.shape(0)) != expected)
        throw std::invalid_argument(std::string(name) + " must have one entry per bank row");
      return static_cast<const int64_t*>(arr.data());
    };
    auto make_bank = [=](const py::array& codes, const py::object& ids, const py::object& removed) {
      ncii::hamming::Bank bank;
      bank.codes = codes_view(codes, "codes");
      bank.n = static_cast<std::size_t>(codes.shape(0));
      bank.ids = i64_view(ids, bank.n, true, "ids");
      bank.removed_rows = i64_view(removed, 0, false, "removed");
      bank.n_removed = removed.is_none() ? 0 : static_cast<std::size_t>(py::len(removed));
      return bank;
    };
    auto to_numpy = [](auto vec) {
      using Vec = decltype(vec);
      using T = typename Vec::value_type;
      if (vec.empty()) return py::array_t<T>(0);
      auto* owned = new Vec(std::move(vec));
      py::capsule owner(owned, [](void* p) { delete static_cast<Vec*>(p); });
      return py::array_t<T>({static_cast<py::ssize_t>(owned->size())}, owned->data(), owner);
    };

    // Query rows in groups of `variants` -> (pointer, number of groups).
    auto query_groups = [=](const py::array& queries, int variants) {
      const uint8_t* q = codes_view(queries, "queries");
      const std::size_t nflat = static_cast<std::size_t>(queries.shape(0));
      if (variants < 1 || nflat % static_cast<std::size_t>(variants))
        throw std::invalid_argument("the number of query rows must be a multiple of variants");
      return std::make_pair(q, nflat / static_cast<std::size_t>(variants));
    };
    // RangeHits -> (lims, ids, distances, variants or None).
    auto hits_tuple = [=](ncii::hamming::RangeHits& hits, int variants) {
      py::object var = py::none();
      if (variants > 1) var = to_numpy(std::move(hits.variants));
      return py::make_tuple(to_numpy(std::move(hits.lims)), to_numpy(std::move(hits.ids)),
                            to_numpy(std::move(hits.distances)), var);
    };

    m.def(
        "hamming_range_search",
        [=](const py::array& codes, const py::array& queries, int radius, int variants, const py::object& ids,
            const py::object& removed, int threads) {
          const ncii::hamming::Bank bank = make_bank(codes, ids, removed);
          const auto [q, nq] = query_groups(queries, variants);
          ncii::hamming::RangeHits hits;
          {
            py::gil_scoped_release release;
            hits = ncii::hamming::range_search(bank, q, nq, variants, radius, threads, ncii::active_simd_level());
          }
          return hits_tuple(hits, variants);
        },
        py::arg("codes"), py::arg("queries"), py::arg("radius"), py::arg("variants") = 1, py::arg("ids") = py::none(),
        py::arg("removed") = py::none(), py::arg("threads") = 0,
        "Exact range search -> (lims, ids, distances, variants or None), CSR like FAISS; hits of a query "
        "ordered by (distance, id). Query rows come in groups of `variants` (e.g. 8 dihedral transforms).");
    m.def(
        "hamming_knn",
        [=](const py::array& codes, const py::array& queries, int k, const py::object& ids, const py::object& removed,
            int threads) {
          const ncii::hamming::Bank bank = make_bank(codes, ids, removed);
          const uint8_t* q = codes_view(queries, "queries");
          const std::size_t nq = static_cast<std::size_t>(queries.shape(0));
          if (k < 1) throw std::invalid_argument("k must be at least 1");
          py::array_t<int64_t> out_ids({static_cast<py::ssize_t>(nq), static_cast<py::ssize_t>(k)});
          py::array_t<int32_t> out_dist({static_cast<py::ssize_t>(nq), static_cast<py::ssize_t>(k)});
          int64_t* ip = out_ids.mutable_data();
          int32_t* dp = out_dist.mutable_data();
          {
            py::gil_scoped_release release;
            ncii::hamming::knn_search(bank, q, nq, k, threads, ncii::active_simd_level(), ip, dp);
          }
          return py::make_tuple(out_ids, out_dist);
        },
        py::arg("codes"), py::arg("queries"), py::arg("k"), py::arg("ids") = py::none(), py::arg("removed") = py::none(),
        py::arg("threads") = 0,
        "Exact k-NN -> (ids (Q, k) int64, distances (Q, k) int32), ascending by (distance, id); "
        "missing slots are id -1, distance 2**31-1.");
    m.def(
        "xor_fold",
        [=](const py::array& data, int threads) {
          if (!(data.flags() & py::array::c_style))
            throw std::invalid_argument("data must be C-contiguous");
          const auto* p = static_cast<const uint8_t*>(data.data());
          const std::size_t bytes = static_cast<std::size_t>(data.nbytes());
          py::gil_scoped_release release;
          return ncii::hamming::xor_fold(p, bytes, threads);
        },
        py::arg("data"), py::arg("threads") = 0,
        "XOR of all 64-bit words of a contiguous array (sequential-read bandwidth probe).");
    // ---- multi-index hashing (csrc/mih.*) ----
    py::class_<ncii::mih::Tables>(m, "MihTables",
                                  "Multi-index tables over rows [0, n) of a (n, 32) bank (immutable).")
        .def(py::init([=](const py::array& codes, int substrings, int threads) {
               const uint8_t* c = codes_view(codes, "codes");
               const std::size_t n = static_cast<std::size_t>(codes.shape(0));
               const int m = substrings > 0 ? substrings : ncii::mih::choose_substrings(n, 31);
               py::gil_scoped_release release;
               return std::make_unique<ncii::mih::Tables>(c, n, m, threads);
             }),
             py::arg("codes"), py::arg("substrings") = 0, py::arg("threads") = 0)
        .def_property_readonly("rows", &ncii::mih::Tables::rows)
        .def_property_readonly("substrings", [](const ncii::mih::Tables& t) { return t.layout().m; })
        .def_property_readonly("widths",
                               [](const ncii::mih::Tables& t) {
                                 const auto& L = t.layout();
                                 return std::vector<int>(L.width, L.width + L.m);
                               })
        .def_property_readonly("nbytes", &ncii::mih::Tables::memory_bytes);
    m.def(
        "mih_range_search",
        [=](const ncii::mih::Tables& tables, const py::array& codes, const py::array& queries, int radius,
            int variants, const py::object& ids, const py::object& removed, int threads, bool auto_route) {
          const ncii::hamming::Bank bank = make_bank(codes, ids, removed);
          const auto [q, nq] = query_groups(queries, variants);
          ncii::hamming::RangeHits hits;
          ncii::mih::Stats stats;
          {
            py::gil_scoped_release release;
            hits = ncii::mih::range_search(tables, bank, q, nq, variants, radius, threads, ncii::active_simd_level(),
                                           auto_route ? ncii::mih::Mode::Auto : ncii::mih::Mode::Probe, &stats);
          }
          const py::tuple found = hits_tuple(hits, variants);
          py::tuple out(5);
          for (std::size_t i = 0; i < 4; ++i) out[i] = found[i];
          out[4] = py::make_tuple(stats.queries, stats.scanned, stats.probes, stats.candidates);
          return out;
        },
        py::arg("tables"), py::arg("codes"), py::arg("queries"), py::arg("radius"), py::arg("variants") = 1,
        py::arg("ids") = py::none(), py::arg("removed") = py::none(), py::arg("threads") = 0,
        py::arg("auto_route") = false,
        "Exact range search through multi-index tables (rows past tables.rows are scanned) -> (lims, ids, "
        "distances, variants or None, (queries, scanned, probes, candidates)); order as hamming_range_search.");
    m.def("mih_choose_substrings", [](std::size_t n, int radius) { return ncii::mih::choose_substrings(n, radius); },
          py::arg("n"), py::arg("radius") = 31,
          "Substring count with the lowest modelled cost for `radius` at n codes, within the memory budget.");
    m.def("hamming_threads", [](int threads) { return ncii::hamming::resolve_threads(threads); },
          py::arg("threads") = 0, "Worker threads a search with `threads` uses at most (0: all).");
  }
}
