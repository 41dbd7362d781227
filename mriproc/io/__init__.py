"""Reading and writing imaging data: BIDS datasets, NIfTI checks, DICOM."""
