/** The images and languages APIs' shapes (GET /v1/images, /v1/images/built, /v1/languages): the SDK's types. */

export type {
  BuiltImage,
  ImageBuildProgress as BuildProgress,
  ImageBuildResult as BuildResult,
  ImageInfo,
  ImageProgress as PullProgress,
} from '@realm/sdk';
