//! Reading tabular data sets from CSV: numeric feature columns and one target.
//!
//! The first row must be a header naming the columns. The column named by
//! [`CsvOptions::target`] is the target: class labels (any text, numbered in
//! order of first appearance, or by the class names fixed at training) or
//! numeric values. Every other column is a feature and must hold finite
//! numbers. Cells are trimmed, a UTF-8 byte-order mark is skipped, and every
//! rejection is a [`DataError`] naming the file, the line and the column.
//!
//! [`read_csv`] reads a file as a stream, never whole into memory. The data
//! may be at most [`MAX_CSV_BYTES`] long and hold at most [`MAX_CSV_ROWS`]
//! rows.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use ::csv::{ByteRecord, ErrorKind, ReaderBuilder, Trim};

use crate::error::{DataError, Result};

/// The largest CSV data [`read_csv`] and [`parse_csv`] accept: 1 GiB.
pub const MAX_CSV_BYTES: u64 = 1 << 30;

/// The most data rows a CSV table may hold: class labels are `u32`s.
pub const MAX_CSV_ROWS: u64 = u32::MAX as u64;

/// The UTF-8 byte-order mark some programs write at the start of a file.
const BOM: &[u8] = b"\xef\xbb\xbf";

/// At most this many characters of a rejected cell are quoted in an error.
const EXCERPT_CHARS: usize = 40;

/// What the target column holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetKind {
    /// Class labels: any text, one class per distinct label.
    Classes,
    /// Numbers to regress on.
    Values,
}

/// Options for reading a CSV table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CsvOptions<'a> {
    /// The name of the target column; every other column is a feature.
    pub target: &'a str,
    /// What the target column holds.
    pub kind: TargetKind,
    /// For a test or evaluation file: the class names in the order fixed at
    /// training; a label not among them is an error, and a file holding a
    /// single class is accepted. Ignored for [`TargetKind::Values`].
    pub class_names: Option<&'a [String]>,
    /// For a test or evaluation file: the feature columns that must match
    /// exactly (the same names in the same order).
    pub feature_columns: Option<&'a [String]>,
}

impl<'a> CsvOptions<'a> {
    /// Options for a training file: the column `target` holds `kind`, and
    /// nothing is fixed in advance.
    pub fn new(target: &'a str, kind: TargetKind) -> Self {
        Self {
            target,
            kind,
            class_names: None,
            feature_columns: None,
        }
    }
}

/// A table read from CSV: a matrix of features and one target per row.
#[derive(Clone, Debug, PartialEq)]
pub struct CsvTable {
    /// The file (or the name given to [`parse_csv`]).
    pub path: PathBuf,
    /// The names of the feature columns, in the order of the header.
    pub feature_columns: Vec<String>,
    /// The name of the target column.
    pub target_column: String,
    /// `n_rows * n_features` features, row-major.
    pub features: Vec<f32>,
    /// One target per row.
    pub target: CsvTarget,
}

/// The target column of a [`CsvTable`].
#[derive(Clone, Debug, PartialEq)]
pub enum CsvTarget {
    /// Class labels.
    Classes {
        /// One class index per row, below `names.len()`.
        labels: Vec<u32>,
        /// The name of each class: `names[i]` is the label text of class `i`.
        names: Vec<String>,
    },
    /// One number per row.
    Values(Vec<f32>),
}

impl CsvTable {
    /// The number of data rows.
    pub fn n_rows(&self) -> usize {
        match &self.target {
            CsvTarget::Classes { labels, .. } => labels.len(),
            CsvTarget::Values(values) => values.len(),
        }
    }

    /// The number of feature columns.
    pub fn n_features(&self) -> usize {
        self.feature_columns.len()
    }

    /// Options that read a test or evaluation file against this (training)
    /// table: the same target, feature columns and class names.
    pub fn eval_options(&self) -> CsvOptions<'_> {
        let (kind, class_names) = match &self.target {
            CsvTarget::Classes { names, .. } => (TargetKind::Classes, Some(names.as_slice())),
            CsvTarget::Values(_) => (TargetKind::Values, None),
        };
        CsvOptions {
            target: &self.target_column,
            kind,
            class_names,
            feature_columns: Some(&self.feature_columns),
        }
    }
}

/// Reads a CSV table from a file, as a stream.
///
/// # Errors
/// [`DataError::Io`] if the file cannot be read; [`DataError::CsvTooLarge`]
/// past [`MAX_CSV_BYTES`]; any error of [`parse_csv`].
pub fn read_csv(path: &Path, options: &CsvOptions<'_>) -> Result<CsvTable> {
    let io_error = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_error)?;
    let size = file.metadata().map_err(io_error)?.len();
    let input = Input { path, bytes: None };
    parse(file, size, &input, options, Limits::DEFAULT)
}

/// Parses a CSV table from bytes in memory; `path` only names the data in
/// errors.
///
/// # Errors
/// [`DataError::CsvTooLarge`] past [`MAX_CSV_BYTES`]; [`DataError::CsvEmpty`],
/// [`DataError::CsvNoHeader`], [`DataError::CsvUnnamedColumn`],
/// [`DataError::CsvDuplicateColumn`], [`DataError::CsvMissingTarget`],
/// [`DataError::CsvNoFeatures`] or [`DataError::CsvFeatureMismatch`] for a bad
/// header; [`DataError::CsvRaggedRow`], [`DataError::CsvMissingValue`],
/// [`DataError::CsvBadNumber`], [`DataError::CsvInvalidUtf8`] or
/// [`DataError::CsvUnknownClass`] for a bad row; [`DataError::CsvNoRows`],
/// [`DataError::CsvTooManyRows`] or [`DataError::CsvSingleClass`] for a table
/// of the wrong size.
pub fn parse_csv(bytes: &[u8], path: &Path, options: &CsvOptions<'_>) -> Result<CsvTable> {
    let input = Input {
        path,
        bytes: Some(bytes),
    };
    parse(bytes, bytes.len() as u64, &input, options, Limits::DEFAULT)
}

/// How much CSV data is accepted (smaller in tests).
#[derive(Clone, Copy)]
struct Limits {
    bytes: u64,
    rows: u64,
}

impl Limits {
    const DEFAULT: Self = Self {
        bytes: MAX_CSV_BYTES,
        rows: MAX_CSV_ROWS,
    };
}

/// The data being parsed: its name, and its bytes when they are in memory
/// (else it is read again from the file to place an error on its line).
struct Input<'a> {
    path: &'a Path,
    bytes: Option<&'a [u8]>,
}

impl Input<'_> {
    /// The 1-based line on which `record` starts.
    ///
    /// The csv crate places a record where the previous one ended: before any
    /// blank lines and before the `\n` of a `\r\n`. Those are skipped here.
    fn line(&self, record: &ByteRecord) -> u64 {
        // The csv crate records the position of every record it reads.
        let Some(position) = record.position() else {
            return 0;
        };
        let at_start = position.byte() == 0;
        let skipped = match self.bytes {
            Some(bytes) => {
                let rest = usize::try_from(position.byte()).map_or(&[][..], |at| bytes.get(at..).unwrap_or_default());
                skipped_newlines(rest, at_start)
            }
            None => File::open(self.path)
                .and_then(|mut file| file.seek(SeekFrom::Start(position.byte())).map(|_| file))
                .map_or(0, |file| skipped_newlines(BufReader::new(file), at_start)),
        };
        position.line() + skipped
    }
}

/// How many `\n` lie in the line breaks at the start of `rest`, after a BOM
/// if `at_start`.
fn skipped_newlines(mut rest: impl BufRead, at_start: bool) -> u64 {
    if at_start && rest.fill_buf().is_ok_and(|buf| buf.starts_with(BOM)) {
        rest.consume(BOM.len());
    }
    let newlines = rest
        .bytes()
        .map_while(io::Result::ok)
        .take_while(|byte| matches!(byte, b'\r' | b'\n'))
        .filter(|&byte| byte == b'\n')
        .count();
    newlines as u64
}

/// Checks the size, then parses at most one byte past the limit, in case a
/// file grows while it is read.
fn parse(data: impl Read, size: u64, input: &Input<'_>, options: &CsvOptions<'_>, limits: Limits) -> Result<CsvTable> {
    let too_large = |found_bytes| DataError::CsvTooLarge {
        path: input.path.to_path_buf(),
        found_bytes,
        limit: limits.bytes,
    };
    if size > limits.bytes {
        return Err(too_large(size));
    }
    let mut data = data.take(limits.bytes + 1);
    let table = parse_table(&mut data, input, options, limits.rows);
    if data.limit() == 0 {
        return Err(too_large(limits.bytes + 1));
    }
    table
}

fn parse_table(data: impl Read, input: &Input<'_>, options: &CsvOptions<'_>, max_rows: u64) -> Result<CsvTable> {
    let path = || input.path.to_path_buf();
    let mut reader = ReaderBuilder::new()
        .has_headers(true)
        .trim(Trim::All)
        .flexible(true)
        .from_reader(data);

    let header = reader
        .byte_headers()
        .map_err(|err| read_error(input.path, err))?
        .clone();
    let header_line = input.line(&header);
    let columns = header_columns(&header, header_line, input.path)?;
    let target_index = columns
        .iter()
        .position(|column| column == options.target)
        .ok_or_else(|| DataError::CsvMissingTarget {
            path: path(),
            line: header_line,
            target: options.target.to_owned(),
            available: columns.clone(),
        })?;
    let target_column = &columns[target_index];
    let feature_columns: Vec<String> = columns
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != target_index)
        .map(|(_, column)| column.clone())
        .collect();
    if feature_columns.is_empty() {
        return Err(DataError::CsvNoFeatures {
            path: path(),
            line: header_line,
            target: target_column.clone(),
        });
    }
    if let Some(expected) = options.feature_columns
        && expected != feature_columns.as_slice()
    {
        return Err(DataError::CsvFeatureMismatch {
            path: path(),
            line: header_line,
            expected: expected.to_vec(),
            found: feature_columns,
        });
    }

    let fixed_classes = options.class_names.filter(|_| options.kind == TargetKind::Classes);
    let mut names = fixed_classes.map_or_else(Vec::new, <[String]>::to_vec);
    let mut class_of = HashMap::with_capacity(names.len());
    // `zip` numbers at most `u32::MAX` names; the first of equal names wins.
    for (name, class) in names.iter().zip(0u32..) {
        class_of.entry(name.clone()).or_insert(class);
    }
    let mut labels = Vec::new();
    let mut values = Vec::new();
    let mut features = Vec::new();
    let mut record = ByteRecord::new();
    let mut n_rows: u64 = 0;
    while reader
        .read_byte_record(&mut record)
        .map_err(|err| read_error(input.path, err))?
    {
        if record.len() != columns.len() {
            return Err(DataError::CsvRaggedRow {
                path: path(),
                line: input.line(&record),
                expected: columns.len(),
                found: record.len(),
            });
        }
        if n_rows == max_rows {
            return Err(DataError::CsvTooManyRows {
                path: path(),
                line: input.line(&record),
                limit: max_rows,
            });
        }
        for (i, (cell, column)) in record.iter().zip(&columns).enumerate() {
            if cell.is_empty() {
                return Err(DataError::CsvMissingValue {
                    path: path(),
                    line: input.line(&record),
                    column: column.clone(),
                });
            }
            let bad_number = || DataError::CsvBadNumber {
                path: path(),
                line: input.line(&record),
                column: column.clone(),
                found: excerpt(cell),
            };
            if i != target_index {
                features.push(number(cell).ok_or_else(bad_number)?);
            } else if options.kind == TargetKind::Values {
                values.push(number(cell).ok_or_else(bad_number)?);
            } else {
                let label = std::str::from_utf8(cell).map_err(|_| DataError::CsvInvalidUtf8 {
                    path: path(),
                    line: input.line(&record),
                    column: column.clone(),
                })?;
                let class = match class_of.get(label) {
                    Some(&class) => class,
                    None if fixed_classes.is_some() => {
                        return Err(DataError::CsvUnknownClass {
                            path: path(),
                            line: input.line(&record),
                            column: column.clone(),
                            found: excerpt(cell),
                            expected: names,
                        });
                    }
                    None => {
                        // There are no more classes than rows, and rows fit in `u32`.
                        let class = u32::try_from(names.len()).expect("class count fits in u32");
                        names.push(label.to_owned());
                        class_of.insert(label.to_owned(), class);
                        class
                    }
                };
                labels.push(class);
            }
        }
        n_rows += 1;
    }

    if n_rows == 0 {
        return Err(DataError::CsvNoRows {
            path: path(),
            line: header_line,
        });
    }
    let target = match options.kind {
        TargetKind::Values => CsvTarget::Values(values),
        TargetKind::Classes if fixed_classes.is_none() && names.len() < 2 => {
            return Err(DataError::CsvSingleClass {
                path: path(),
                column: target_column.clone(),
                class: names.swap_remove(0),
                rows: labels.len(),
            });
        }
        TargetKind::Classes => CsvTarget::Classes { labels, names },
    };
    Ok(CsvTable {
        path: path(),
        feature_columns,
        target_column: target_column.clone(),
        features,
        target,
    })
}

/// The column names of `header`, checked: present, text, not all numbers
/// (which would be data), non-empty and unique.
fn header_columns(header: &ByteRecord, line: u64, path: &Path) -> Result<Vec<String>> {
    let path = || path.to_path_buf();
    if header.is_empty() {
        return Err(DataError::CsvEmpty { path: path() });
    }
    let columns = header
        .iter()
        .map(|cell| {
            String::from_utf8(cell.to_vec()).map_err(|_| DataError::CsvInvalidUtf8 {
                path: path(),
                line,
                column: String::from_utf8_lossy(cell).into_owned(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if columns.iter().all(|column| column.parse::<f64>().is_ok()) {
        return Err(DataError::CsvNoHeader {
            path: path(),
            line,
            first_cell: excerpt(columns[0].as_bytes()),
        });
    }
    let mut seen = HashMap::with_capacity(columns.len());
    for (i, column) in columns.iter().enumerate() {
        if column.is_empty() {
            return Err(DataError::CsvUnnamedColumn {
                path: path(),
                line,
                position: i + 1,
            });
        }
        if let Some(first) = seen.insert(column.as_str(), i) {
            return Err(DataError::CsvDuplicateColumn {
                path: path(),
                line,
                column: column.clone(),
                first: first + 1,
                second: i + 1,
            });
        }
    }
    Ok(columns)
}

/// A cell as a finite `f32`, if it is one.
fn number(cell: &[u8]) -> Option<f32> {
    let value: f32 = std::str::from_utf8(cell).ok()?.parse().ok()?;
    value.is_finite().then_some(value)
}

/// A cell for an error message: its first [`EXCERPT_CHARS`] characters.
fn excerpt(cell: &[u8]) -> String {
    let text = String::from_utf8_lossy(cell);
    if text.chars().count() <= EXCERPT_CHARS {
        return text.into_owned();
    }
    text.chars().take(EXCERPT_CHARS).chain(['…']).collect()
}

/// A failure of the csv reader: with flexible rows and byte records, only
/// reading the input can fail.
fn read_error(path: &Path, err: ::csv::Error) -> DataError {
    let source = match err.into_kind() {
        ErrorKind::Io(source) => source,
        other => io::Error::new(io::ErrorKind::InvalidData, format!("{other:?}")),
    };
    DataError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = "data/iris.csv";

    fn classes(target: &str) -> CsvOptions<'_> {
        CsvOptions::new(target, TargetKind::Classes)
    }

    fn parse_str(text: &str, options: &CsvOptions<'_>) -> Result<CsvTable> {
        parse_csv(text.as_bytes(), Path::new(PATH), options)
    }

    fn parse_err(text: &str, options: &CsvOptions<'_>) -> DataError {
        parse_str(text, options).expect_err("the data should be rejected")
    }

    /// Asserts that the message of `err` contains the file name and each of
    /// `parts`.
    fn assert_mentions(err: &DataError, parts: &[&str]) {
        let message = err.to_string();
        for part in [PATH].iter().chain(parts) {
            assert!(message.contains(part), "message does not mention {part:?}: {message}");
        }
    }

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    const IRIS: &str = "\
sepal_len, species ,petal_len
5.1,setosa,1.4
 7.0 , versicolor,4.7
6.3,virginica,6.0
4.9,setosa,1.4e0
";

    #[test]
    fn reads_a_file_with_string_classes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("iris.csv");
        std::fs::write(&path, IRIS).unwrap();
        let table = read_csv(&path, &classes("species")).unwrap();
        assert_eq!(table.path, path);
        assert_eq!(table.feature_columns, strings(&["sepal_len", "petal_len"]));
        assert_eq!(table.target_column, "species");
        assert_eq!((table.n_rows(), table.n_features()), (4, 2));
        assert_eq!(table.features, [5.1, 1.4, 7.0, 4.7, 6.3, 6.0, 4.9, 1.4]);
        assert_eq!(
            table.target,
            CsvTarget::Classes {
                labels: vec![0, 1, 2, 0],
                names: strings(&["setosa", "versicolor", "virginica"]),
            }
        );
        assert_eq!(parse_str(IRIS, &classes("species")).unwrap().features, table.features);
    }

    #[test]
    fn numeric_class_labels_are_numbered_by_first_appearance() {
        let table = parse_str("x,digit\n0.5,7\n0.25,3\n1,7\n2,\"3\"\n", &classes("digit")).unwrap();
        assert_eq!(
            table.target,
            CsvTarget::Classes {
                labels: vec![0, 1, 0, 1],
                names: strings(&["7", "3"]),
            }
        );
    }

    #[test]
    fn reads_a_values_target() {
        let options = CsvOptions::new("price", TargetKind::Values);
        let table = parse_str("price,rooms,area\n250000,3,81.5\n-1.5e3,1,30\n", &options).unwrap();
        assert_eq!(table.feature_columns, strings(&["rooms", "area"]));
        assert_eq!(table.features, [3.0, 81.5, 1.0, 30.0]);
        assert_eq!(table.target, CsvTarget::Values(vec![250_000.0, -1500.0]));
        let err = parse_err("price,rooms\n12,3\ncheap,2\n", &options);
        assert!(
            matches!(&err, DataError::CsvBadNumber { line: 3, column, found, .. } if column == "price" && found == "cheap"),
            "{err:?}"
        );
        assert_mentions(&err, &["line 3", "`price`", "`cheap`", "finite number"]);
    }

    #[test]
    fn skips_a_byte_order_mark() {
        let table = parse_str(&format!("\u{feff}{IRIS}"), &classes("species")).unwrap();
        assert_eq!(table.feature_columns, strings(&["sepal_len", "petal_len"]));
        assert_eq!(table.n_rows(), 4);
    }

    #[test]
    fn lines_count_crlf_and_blank_lines() {
        let text = "\u{feff}\r\n\r\nx,y\r\n1,a\r\n\r\n2,b\r\n3\r\n";
        let err = parse_err(text, &classes("y"));
        assert!(matches!(&err, DataError::CsvRaggedRow { line: 7, .. }), "{err:?}");
        // Read from a file, the line is found by reading the file again.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("iris.csv");
        std::fs::write(&path, text).unwrap();
        let err = read_csv(&path, &classes("y")).unwrap_err();
        assert!(matches!(&err, DataError::CsvRaggedRow { line: 7, .. }), "{err:?}");
        let err = parse_err("\n\n1,2\n", &classes("y"));
        assert!(matches!(&err, DataError::CsvNoHeader { line: 3, .. }), "{err:?}");
    }

    #[test]
    fn rejects_a_ragged_row() {
        for (row, found) in [("6.3,virginica", 2), ("6.3,virginica,6.0,", 4)] {
            let text = format!("sepal_len,species,petal_len\n5.1,setosa,1.4\n{row}\n");
            let err = parse_err(&text, &classes("species"));
            assert!(
                matches!(&err, DataError::CsvRaggedRow { line: 3, expected: 3, found: f, .. } if *f == found),
                "{err:?}"
            );
            assert_mentions(&err, &["line 3", "expected 3 fields", &format!("found {found}")]);
        }
    }

    #[test]
    fn rejects_non_numeric_non_finite_and_empty_features() {
        for cell in ["abc", "NaN", "inf", "-infinity", "1e39", "1,5"] {
            let text = format!("a,b,y\n1,2,u\n3,\"{cell}\",v\n");
            let err = parse_err(&text, &classes("y"));
            assert!(
                matches!(&err, DataError::CsvBadNumber { line: 3, column, found, .. } if column == "b" && found == cell),
                "{cell}: {err:?}"
            );
            assert_mentions(&err, &["line 3", "column `b`", cell]);
        }
        for row in ["1,,u", "1,  ,u", "1,2,"] {
            let err = parse_err(&format!("a,b,y\n{row}\n"), &classes("y"));
            let column = if row.ends_with(',') { "y" } else { "b" };
            assert!(
                matches!(&err, DataError::CsvMissingValue { line: 2, column: c, .. } if c == column),
                "{row}: {err:?}"
            );
            assert_mentions(&err, &["line 2", &format!("column `{column}`"), "empty"]);
        }
    }

    #[test]
    fn quotes_only_the_start_of_a_long_cell() {
        let cell = "x".repeat(1000);
        let err = parse_err(&format!("a,y\n{cell},u\n"), &classes("y"));
        let DataError::CsvBadNumber { found, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(found.chars().count(), EXCERPT_CHARS + 1);
        assert!(found.ends_with('…'), "{found}");
    }

    #[test]
    fn rejects_a_missing_target_column_listing_the_columns() {
        let err = parse_err(IRIS, &classes("variety"));
        assert!(
            matches!(&err, DataError::CsvMissingTarget { line: 1, target, available, .. }
                if target == "variety" && *available == strings(&["sepal_len", "species", "petal_len"])),
            "{err:?}"
        );
        assert_mentions(&err, &["line 1", "`variety`", "`sepal_len`, `species`, `petal_len`"]);
    }

    #[test]
    fn rejects_a_single_class() {
        let err = parse_err("a,y\n1,cat\n2,cat\n", &classes("y"));
        assert!(
            matches!(&err, DataError::CsvSingleClass { column, class, rows: 2, .. } if column == "y" && class == "cat"),
            "{err:?}"
        );
        assert_mentions(&err, &["column `y`", "`cat`", "at least two classes"]);
    }

    #[test]
    fn rejects_a_header_without_rows_and_an_empty_file() {
        let err = parse_err("\n\na,y\n\n", &classes("y"));
        assert!(matches!(&err, DataError::CsvNoRows { line: 3, .. }), "{err:?}");
        assert_mentions(&err, &["line 3", "no data rows"]);
        for text in ["", "\n\r\n"] {
            let err = parse_err(text, &classes("y"));
            assert!(matches!(&err, DataError::CsvEmpty { .. }), "{err:?}");
            assert_mentions(&err, &["empty", "header row"]);
        }
    }

    #[test]
    fn rejects_a_first_row_of_numbers() {
        let err = parse_err("5.1,0,1.4\n4.9,0,1.4\n", &classes("0"));
        assert!(
            matches!(&err, DataError::CsvNoHeader { line: 1, first_cell, .. } if first_cell == "5.1"),
            "{err:?}"
        );
        assert_mentions(
            &err,
            &[
                "line 1",
                "looks like data",
                "a header row naming the columns is required",
            ],
        );
        // A header may name some columns with numbers.
        assert!(parse_str("2019,2020,y\n1,2,a\n3,4,b\n", &classes("y")).is_ok());
    }

    #[test]
    fn rejects_duplicate_and_unnamed_columns() {
        let err = parse_err("a,b,y,b\n1,2,u,3\n", &classes("y"));
        assert!(
            matches!(&err, DataError::CsvDuplicateColumn { line: 1, column, first: 2, second: 4, .. } if column == "b"),
            "{err:?}"
        );
        assert_mentions(&err, &["line 1", "`b` twice", "columns 2 and 4"]);
        let err = parse_err(",a,y\n0,1,u\n", &classes("y"));
        assert!(
            matches!(
                &err,
                DataError::CsvUnnamedColumn {
                    line: 1,
                    position: 1,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_mentions(&err, &["line 1", "column 1 unnamed"]);
    }

    #[test]
    fn rejects_a_table_without_features() {
        let err = parse_err("y\ncat\ndog\n", &classes("y"));
        assert!(
            matches!(&err, DataError::CsvNoFeatures { line: 1, target, .. } if target == "y"),
            "{err:?}"
        );
        assert_mentions(&err, &["line 1", "only the target column `y`"]);
    }

    #[test]
    fn rejects_invalid_utf8_labels_and_column_names() {
        let err = parse_str_bytes(b"a,y\n1,cat\n2,\xff\n");
        assert!(
            matches!(&err, DataError::CsvInvalidUtf8 { line: 3, column, .. } if column == "y"),
            "{err:?}"
        );
        assert_mentions(&err, &["line 3", "column `y`", "UTF-8"]);
        let err = parse_str_bytes(b"a\xff,y\n1,cat\n");
        assert!(
            matches!(&err, DataError::CsvInvalidUtf8 { line: 1, column, .. } if column == "a\u{fffd}"),
            "{err:?}"
        );
    }

    fn parse_str_bytes(bytes: &[u8]) -> DataError {
        parse_csv(bytes, Path::new(PATH), &classes("y")).expect_err("the data should be rejected")
    }

    #[test]
    fn class_names_fix_the_numbering_and_reject_unknown_labels() {
        let train = parse_str(IRIS, &classes("species")).unwrap();
        let test = "sepal_len,species,petal_len\n6.0,virginica,5.0\n5.0,setosa,1.5\n";
        let table = parse_str(test, &train.eval_options()).unwrap();
        assert_eq!(
            table.target,
            CsvTarget::Classes {
                labels: vec![2, 0],
                names: strings(&["setosa", "versicolor", "virginica"]),
            }
        );
        // One class is enough in an evaluation file.
        assert_eq!(
            parse_str("sepal_len,species,petal_len\n6.0,setosa,5.0\n", &train.eval_options())
                .unwrap()
                .n_rows(),
            1
        );

        let err = parse_err(
            "sepal_len,species,petal_len\n6.0,setosa,5.0\n5.0,Setosa,1.5\n",
            &train.eval_options(),
        );
        assert!(
            matches!(&err, DataError::CsvUnknownClass { line: 3, column, found, expected, .. }
                if column == "species" && found == "Setosa" && *expected == strings(&["setosa", "versicolor", "virginica"])),
            "{err:?}"
        );
        assert_mentions(
            &err,
            &["line 3", "column `species`", "unknown class `Setosa`", "`versicolor`"],
        );
    }

    #[test]
    fn feature_columns_must_match_exactly() {
        let train = parse_str(IRIS, &classes("species")).unwrap();
        let cases = [
            (
                "petal_len,species,sepal_len",
                "feature column 1 is `petal_len`, expected `sepal_len`",
            ),
            (
                "sepal_len,species",
                "found 1 feature columns, expected 2; `petal_len` is missing",
            ),
            ("sepal_len,species,petal_len,width", "`width` is extra"),
        ];
        for (header, detail) in cases {
            let row = vec!["1"; header.split(',').count()]
                .join(",")
                .replacen("1,1", "1,setosa", 1);
            let err = parse_err(&format!("{header}\n{row}\n"), &train.eval_options());
            assert!(
                matches!(&err, DataError::CsvFeatureMismatch { line: 1, expected, .. } if *expected == train.feature_columns),
                "{header}: {err:?}"
            );
            assert_mentions(&err, &["line 1", detail]);
        }
    }

    #[test]
    fn limits_the_size_and_the_rows() {
        let limits = Limits { bytes: 20, rows: 2 };
        let input = Input {
            path: Path::new(PATH),
            bytes: None,
        };
        let options = classes("y");
        let text = "x,y\n1,a\n2,b\n3,a\n";
        let err = parse(text.as_bytes(), 0, &input, &options, limits).unwrap_err();
        assert!(matches!(&err, DataError::CsvTooManyRows { limit: 2, .. }), "{err:?}");
        assert_mentions(&err, &["more than 2 data rows"]);
        let err = parse(text.as_bytes(), 21, &input, &options, limits).unwrap_err();
        assert!(
            matches!(
                &err,
                DataError::CsvTooLarge {
                    found_bytes: 21,
                    limit: 20,
                    ..
                }
            ),
            "{err:?}"
        );
        // Data longer than its stated size (a file that grew) is cut off.
        let long = format!("x,y\n{}", "1,a\n2,b\n".repeat(3));
        let err = parse(long.as_bytes(), 0, &input, &options, Limits { bytes: 20, rows: 100 }).unwrap_err();
        assert!(
            matches!(&err, DataError::CsvTooLarge { found_bytes: 21, .. }),
            "{err:?}"
        );
        assert!(parse(text.as_bytes(), 16, &input, &options, Limits { bytes: 16, rows: 3 }).is_ok());
    }

    #[test]
    fn read_csv_rejects_a_file_over_the_limit_before_reading_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("iris.csv");
        let file = File::create(&path).unwrap();
        file.set_len(MAX_CSV_BYTES + 1).unwrap(); // sparse: no disk used
        let err = read_csv(&path, &classes("y")).unwrap_err();
        assert!(
            matches!(&err, DataError::CsvTooLarge { found_bytes, limit: MAX_CSV_BYTES, .. } if *found_bytes == MAX_CSV_BYTES + 1),
            "{err:?}"
        );
        let err = read_csv(&dir.path().join("missing.csv"), &classes("y")).unwrap_err();
        assert!(matches!(&err, DataError::Io { .. }), "{err:?}");
    }
}
